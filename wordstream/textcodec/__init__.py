"""Text to numbers, shared by training (training/), evaluation and serving (server/).

Torch-free and dependency-free: the server imports it as it is.
"""

from wordstream.textcodec.codec import Encoded, TextCodec
from wordstream.textcodec.tokenizer import Tokenizer
from wordstream.textcodec.vocab import PAD_ID, UNK_ID, Vocabulary

__all__ = ["PAD_ID", "UNK_ID", "Encoded", "TextCodec", "Tokenizer", "Vocabulary"]
