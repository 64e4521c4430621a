from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HistoryMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HISTORY_MODE_UNSPECIFIED: _ClassVar[HistoryMode]
    HISTORY_MODE_DELTA: _ClassVar[HistoryMode]
    HISTORY_MODE_FULL: _ClassVar[HistoryMode]
    HISTORY_MODE_NONE: _ClassVar[HistoryMode]
HISTORY_MODE_UNSPECIFIED: HistoryMode
HISTORY_MODE_DELTA: HistoryMode
HISTORY_MODE_FULL: HistoryMode
HISTORY_MODE_NONE: HistoryMode

class StreamRequest(_message.Message):
    __slots__ = ("seq", "open", "resume", "word", "rewind", "reset", "close", "paste")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    REWIND_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    PASTE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    open: Open
    resume: Resume
    word: str
    rewind: Rewind
    reset: Reset
    close: Close
    paste: Paste
    def __init__(self, seq: _Optional[int] = ..., open: _Optional[_Union[Open, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., word: _Optional[str] = ..., rewind: _Optional[_Union[Rewind, _Mapping]] = ..., reset: _Optional[_Union[Reset, _Mapping]] = ..., close: _Optional[_Union[Close, _Mapping]] = ..., paste: _Optional[_Union[Paste, _Mapping]] = ...) -> None: ...

class Open(_message.Message):
    __slots__ = ("model", "history")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    model: str
    history: HistoryMode
    def __init__(self, model: _Optional[str] = ..., history: _Optional[_Union[HistoryMode, str]] = ...) -> None: ...

class Resume(_message.Message):
    __slots__ = ("session_id", "history")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    history: HistoryMode
    def __init__(self, session_id: _Optional[str] = ..., history: _Optional[_Union[HistoryMode, str]] = ...) -> None: ...

class Rewind(_message.Message):
    __slots__ = ("words",)
    WORDS_FIELD_NUMBER: _ClassVar[int]
    words: int
    def __init__(self, words: _Optional[int] = ...) -> None: ...

class Reset(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Close(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Paste(_message.Message):
    __slots__ = ("words",)
    WORDS_FIELD_NUMBER: _ClassVar[int]
    words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, words: _Optional[_Iterable[str]] = ...) -> None: ...

class MultiplexRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("seq", "session_id", "open", "resume", "word", "paste", "rewind", "reset", "detach", "close")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    PASTE_FIELD_NUMBER: _ClassVar[int]
    REWIND_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    DETACH_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    session_id: str
    open: Open
    resume: Resume
    word: str
    paste: Paste
    rewind: Rewind
    reset: Reset
    detach: Detach
    close: Close
    def __init__(self, seq: _Optional[int] = ..., session_id: _Optional[str] = ..., open: _Optional[_Union[Open, _Mapping]] = ..., resume: _Optional[_Union[Resume, _Mapping]] = ..., word: _Optional[str] = ..., paste: _Optional[_Union[Paste, _Mapping]] = ..., rewind: _Optional[_Union[Rewind, _Mapping]] = ..., reset: _Optional[_Union[Reset, _Mapping]] = ..., detach: _Optional[_Union[Detach, _Mapping]] = ..., close: _Optional[_Union[Close, _Mapping]] = ...) -> None: ...

class Detach(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MultiplexResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StreamResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[StreamResponse, _Mapping]]] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("seq", "session_id", "opened", "word", "rewound", "closed", "error", "detached")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    REWOUND_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DETACHED_FIELD_NUMBER: _ClassVar[int]
    seq: int
    session_id: str
    opened: Opened
    word: WordResult
    rewound: Position
    closed: Closed
    error: StreamError
    detached: Closed
    def __init__(self, seq: _Optional[int] = ..., session_id: _Optional[str] = ..., opened: _Optional[_Union[Opened, _Mapping]] = ..., word: _Optional[_Union[WordResult, _Mapping]] = ..., rewound: _Optional[_Union[Position, _Mapping]] = ..., closed: _Optional[_Union[Closed, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ..., detached: _Optional[_Union[Closed, _Mapping]] = ...) -> None: ...

class Opened(_message.Message):
    __slots__ = ("model", "history", "resumed", "position", "idle_timeout_seconds", "words_sha256")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WORDS_SHA256_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    history: HistoryMode
    resumed: bool
    position: Position
    idle_timeout_seconds: float
    words_sha256: str
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., history: _Optional[_Union[HistoryMode, str]] = ..., resumed: _Optional[bool] = ..., position: _Optional[_Union[Position, _Mapping]] = ..., idle_timeout_seconds: _Optional[float] = ..., words_sha256: _Optional[str] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("words", "steps", "output", "state")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    words: int
    steps: int
    output: Output
    state: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, words: _Optional[int] = ..., steps: _Optional[int] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., state: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class WordResult(_message.Message):
    __slots__ = ("word_index", "word", "tokens", "output", "state", "history")
    WORD_INDEX_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    word_index: int
    word: str
    tokens: _containers.RepeatedCompositeFieldContainer[Token]
    output: Output
    state: _containers.RepeatedCompositeFieldContainer[Tensor]
    history: HistoryUpdate
    def __init__(self, word_index: _Optional[int] = ..., word: _Optional[str] = ..., tokens: _Optional[_Iterable[_Union[Token, _Mapping]]] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., state: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., history: _Optional[_Union[HistoryUpdate, _Mapping]] = ...) -> None: ...

class HistoryUpdate(_message.Message):
    __slots__ = ("length", "start", "steps")
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    length: int
    start: int
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    def __init__(self, length: _Optional[int] = ..., start: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("text", "id", "unknown")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_FIELD_NUMBER: _ClassVar[int]
    text: str
    id: int
    unknown: bool
    def __init__(self, text: _Optional[str] = ..., id: _Optional[int] = ..., unknown: _Optional[bool] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("probabilities", "label")
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    label: str
    def __init__(self, probabilities: _Optional[_Iterable[float]] = ..., label: _Optional[str] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "layers", "hidden", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    layers: int
    hidden: int
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., layers: _Optional[int] = ..., hidden: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("index", "word_index", "word", "token", "output", "state")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    WORD_INDEX_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    index: int
    word_index: int
    word: str
    token: Token
    output: Output
    state: _containers.RepeatedCompositeFieldContainer[Tensor]
    def __init__(self, index: _Optional[int] = ..., word_index: _Optional[int] = ..., word: _Optional[str] = ..., token: _Optional[_Union[Token, _Mapping]] = ..., output: _Optional[_Union[Output, _Mapping]] = ..., state: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ...) -> None: ...

class Closed(_message.Message):
    __slots__ = ("words", "steps")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    words: int
    steps: int
    def __init__(self, words: _Optional[int] = ..., steps: _Optional[int] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id", "start", "end")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    start: int
    end: int
    def __init__(self, session_id: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "model", "history_mode", "words", "steps", "start", "history", "attached", "idle_seconds")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    HISTORY_MODE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    model: ModelInfo
    history_mode: HistoryMode
    words: int
    steps: int
    start: int
    history: _containers.RepeatedCompositeFieldContainer[Step]
    attached: bool
    idle_seconds: float
    def __init__(self, session_id: _Optional[str] = ..., model: _Optional[_Union[ModelInfo, _Mapping]] = ..., history_mode: _Optional[_Union[HistoryMode, str]] = ..., words: _Optional[int] = ..., steps: _Optional[int] = ..., start: _Optional[int] = ..., history: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., attached: _Optional[bool] = ..., idle_seconds: _Optional[float] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "labels", "cell", "layers", "hidden", "vocabulary_size", "state_names", "evaluation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CELL_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_SIZE_FIELD_NUMBER: _ClassVar[int]
    STATE_NAMES_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    cell: str
    layers: int
    hidden: int
    vocabulary_size: int
    state_names: _containers.RepeatedScalarFieldContainer[str]
    evaluation: Evaluation
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., cell: _Optional[str] = ..., layers: _Optional[int] = ..., hidden: _Optional[int] = ..., vocabulary_size: _Optional[int] = ..., state_names: _Optional[_Iterable[str]] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("accuracy", "macro_f1", "n", "typing", "split")
    class TypingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MACRO_F1_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    macro_f1: float
    n: int
    typing: _containers.ScalarMap[str, float]
    split: str
    def __init__(self, accuracy: _Optional[float] = ..., macro_f1: _Optional[float] = ..., n: _Optional[int] = ..., typing: _Optional[_Mapping[str, float]] = ..., split: _Optional[str] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("words", "steps")
    WORDS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    words: int
    steps: int
    def __init__(self, words: _Optional[int] = ..., steps: _Optional[int] = ...) -> None: ...
