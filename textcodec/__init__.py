"""Text to numbers, shared by training (export/), evaluation and serving (server/).

Torch-free and dependency-free: the server imports it as it is.
"""

from textcodec.codec import Encoded, TextCodec
from textcodec.tokenizer import Tokenizer
from textcodec.vocab import PAD_ID, UNK_ID, Vocabulary

__all__ = ["PAD_ID", "UNK_ID", "Encoded", "TextCodec", "Tokenizer", "Vocabulary"]
