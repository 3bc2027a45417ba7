"""Training recipes: everything needed to reproduce a model, in one function each."""
