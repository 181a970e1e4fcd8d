"""Text as an input: a tokenizer fitted on a dataset's own text (nothing downloaded), the text
fields each task reads, and what a model's text tower needs to be rebuilt (the vocabulary)."""
