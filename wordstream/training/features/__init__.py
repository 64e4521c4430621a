"""Fixed word features joined to the learned word vectors: affect lexicons (lexicon.py) and a
frozen pretrained MiniLM table (pretrained.py). Both need torch only where they build tables."""
