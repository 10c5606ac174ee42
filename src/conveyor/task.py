"""Declaring tasks: plain functions and classes, typed by their annotations.

    @conveyor.task(resource="gpu", batch=8)
    def detect(frames: list[Frame]) -> list[Detections]: ...

    @conveyor.task(key="camera")
    class Track:
        def __init__(self) -> None: ...
        def __call__(self, det: Detections) -> Tracks | None: ...

    @conveyor.source
    def camera() -> Iterator[Frame]: ...

Tasks and sources take **arguments** with ``.bind``: ``Graph([Cameras.bind(cfg), detect.bind(
model="yolo.onnx"), Track, Associate.bind(window=60)])``. A class's arguments go to its
``__init__``; a function's are its keyword-only parameters (after ``*``: its messages come
before). They are checked and pickled when bound, and each instance is built in its worker from
a fresh copy of them (after a restart too), so no setting travels in a global or the
environment.

The decorator leaves the function or class usable as before and attaches a ``TaskSpec`` (as
``.spec``) that records what the graph and the planner need: input and output *message types*
(the graph is wired by them), resource kind, batching, partitioning key, timeout, replicas and a
cost hint. A class is a stateful task: it is constructed once inside the process that runs it
(so a model loads once per process; with ``key``, once per key value).

Annotations decide the wiring, so they are checked here, at definition time, with messages that
say how to fix them: a missing annotation, a batch task that is not ``list[T] -> list[U]``, a
source that is not a generator of one type.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import pickle
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast, overload

from conveyor._errors import ConfigurationError
from conveyor.spec import ON_ERROR, Checkpoint, Gather, OnError

Resource = Literal["cpu", "gpu"]
Kind = Literal["source", "task", "sink"]
_RESOURCES = ("cpu", "gpu")


@dataclass(frozen=True)
class TaskSpec:
    """Everything the graph and the planner know about one task."""

    name: str
    target: Callable[..., Any]  # the function, or the class to construct in the worker
    kind: Kind
    inputs: tuple[tuple[str, type], ...]  # (parameter, message type) in signature order
    output: type | None  # the message type produced (element type for a batch task)
    resource: Resource = "cpu"
    batch: int = 1  # >1: takes and returns lists of up to this many items
    max_wait: float = 0.01  # seconds a partial batch may wait for more items
    key: str | None = None  # attribute of the input that partitions a stateful task
    timeout: float | None = None  # seconds one call may take (the monitor enforces it)
    replicas: int | Literal["auto"] = "auto"  # auto: the planner decides
    cost: float | None = None  # hint: seconds of work per item
    optional_output: bool = False  # returns T | None: None means "nothing for this input"
    wire: dict[str, str] = field(default_factory=dict)  # parameter -> producer name
    join_on: tuple[str, ...] = ()  # a join matches inputs whose these attributes are equal
    gather: Gather | None = None  # takes list[T]: the messages of one group (one instant)
    on_error: OnError = "dead_letter"  # when the code raises: see conveyor.spec.DeadLetter
    retries: int = 2  # on_error="retry": calls again this many times before giving up
    checkpoint: Checkpoint | None = Checkpoint()  # stateful tasks: how often state is saved
    node: str | None = None  # Ray cluster: the node it must run on (a label; see cluster_plan)
    arguments: bytes | None = None  # pickled (args, kwargs) given with .bind(...)
    # A source: True, it may wait (I/O, a camera): read in a thread of its own; False, it
    # never waits (CPU work only): read in its pipeline's loop, in turn with the others;
    # None: in a thread when it shares its pipeline with other sources.
    waits: bool | None = None
    # A source bound per camera: how much work its items make below it, against the other
    # cameras' (a camera whose frames cost twice as much to detect in: 2). A task partitioned
    # by camera gives each replica an even share of this weight, not of the camera count.
    weight: float = 1.0

    @property
    def stateful(self) -> bool:
        return inspect.isclass(self.target)

    @property
    def constructed(self) -> bool:
        """Built once with its arguments (a class, or a source's generator function), rather
        than called per item with them (a function task)."""
        return self.stateful or self.kind == "source"

    def bound_arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments given with ``.bind``, as a fresh copy (every instance its own)."""
        if self.arguments is None:
            return (), {}
        args, kwargs = pickle.loads(self.arguments)
        return args, kwargs

    def construct(self) -> Any:
        """A class target's instance (or a source function's generator), built with its
        arguments: in the process that runs it."""
        args, kwargs = self.bound_arguments()
        return self.target(*args, **kwargs)

    def function(self) -> Callable[..., Any]:
        """A function task's callable, its keyword arguments applied."""
        if self.arguments is None:
            return self.target
        _, kwargs = self.bound_arguments()
        return functools.partial(self.target, **kwargs)

    def named(self, name: str) -> TaskSpec:
        """This task under another name (two bindings of one task in a graph need two)."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a task's name must be a non-empty string, got {name!r}")
        return dataclasses.replace(self, name=name)

    def with_options(self, **options: Any) -> TaskSpec:
        """This task with some of its options set for this graph: ``max_wait``, ``timeout``,
        ``cost``, ``retries`` or, for a source bound per camera, ``weight`` (what suits a run
        of files may not suit live cameras: a gather below files may wait as long as it
        takes, one below live cameras not)."""
        unknown = sorted(set(options) - _PER_GRAPH)
        if unknown:
            raise ConfigurationError(
                f"task {self.name!r}: with_options takes {sorted(_PER_GRAPH)}, not {unknown}"
            )
        _check_options(self.name, dict(options))
        return dataclasses.replace(self, **options)

    @property
    def batched(self) -> bool:
        return self.batch > 1

    @property
    def replicable(self) -> bool:
        """Can run as several replicas: one input, and stateless or partitioned by key."""
        one_input = self.kind != "source" and len(self.inputs) == 1 and self.gather is None
        return one_input and (not self.stateful or bool(self.key))

    def describe(self) -> str:
        ins = ", ".join(f"{p}: {t.__name__}" for p, t in self.inputs) or "-"
        out = self.output.__name__ if self.output else "-"
        extras: list[str] = [self.resource]
        if self.batched:
            extras.append(f"batch={self.batch}")
        if self.key:
            extras.append(f"key={self.key}")
        return f"{self.kind} {self.name}({ins}) -> {out} [{', '.join(extras)}]"


F = TypeVar("F", bound=Callable[..., Any])


@overload
def task(fn: F, /) -> F: ...
@overload
def task(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    resource: Resource = "cpu",
    batch: int = 1,
    max_wait: float = 0.01,
    key: str | None = None,
    timeout: float | None = None,
    replicas: int | Literal["auto"] = "auto",
    cost: float | None = None,
    wire: dict[str, str] | None = None,
    join_on: tuple[str, ...] | str = (),
    gather: Gather | None = None,
    on_error: OnError = "dead_letter",
    retries: int = 2,
    checkpoint: Checkpoint | bool = True,
    node: str | None = None,
) -> Callable[[F], F]: ...
def task(fn: Any = None, /, **options: Any) -> Any:
    """Declare a task (a function or a class whose instances are called per item)."""
    if fn is not None:
        return _declare(fn, "task", options)
    return lambda f: _declare(f, "task", options)


@overload
def source(fn: F, /) -> F: ...
@overload
def source(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    resource: Resource = "cpu",
    cost: float | None = None,
    timeout: float | None = None,
    node: str | None = None,
    waits: bool | None = None,
) -> Callable[[F], F]: ...
def source(fn: Any = None, /, **options: Any) -> Any:
    """Declare a source: a generator function (or class with ``__iter__``) yielding one type.

    A class may also define ``resume(n)``: after a restart, start at item n (the first n are
    done) instead of having n items skipped; ``acknowledge(n)``: items before n, and all
    that derives from them, are done (a broker's commit point); and a ``dropped`` attribute:
    how many items it has let go unsent so far (a live camera that keeps only its newest
    frames when the pipeline is behind), read after each item into the run's statistics
    (``TaskStats.dropped``, the dashboard, Prometheus). An instance with ``live = True`` (a
    stream that may wait for its camera) is read in a thread of its own, so that the tasks
    beside it never wait with it; with ``drop_oldest = True`` too, it never waits for its
    pipeline: a new item replaces the oldest one not taken yet (counted in ``dropped``).
    Bound once per camera, instances with ``keep_in_step =
    True`` (files) read no more than a few items ahead of the slowest of them, wherever each
    runs.

    Where several sources share a pipeline (one per camera), each iterates in a thread of its
    own, a couple of items ahead, so a camera that waits holds up no other; ``resume`` runs
    before that thread starts, ``acknowledge`` in the pipeline's loop. ``waits=False``: the
    source never waits (CPU work only, such as decoding a file already read): it is iterated
    in the pipeline's loop, in turn with the others, with no thread (threads then only wait
    for the interpreter's lock: 8 synthetic 1080p cameras went 8% slower in threads);
    ``waits=True``: in a thread even when alone."""
    if fn is not None:
        return _declare(fn, "source", options)
    return lambda f: _declare(f, "source", options)


def bind(target: Any, /, *args: Any, **kwargs: Any) -> TaskSpec:
    """``target`` (a decorated class or function) with the arguments its instances are built
    with: ``Track.bind(store)`` is the same as ``conveyor.bind(Track, store)``.

    Checked now against the signature, and pickled now (what cannot cross processes is refused
    here, naming the argument); rebuilt from the pickle in every worker, after every restart.
    """
    spec = spec_of(target)
    name = spec.name
    if spec.constructed:
        signature = inspect.signature(spec.target)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigurationError(
                f"{spec.kind} {name!r}: cannot bind these arguments: {exc} "
                f"(the signature is {name}{signature})"
            ) from None
    else:
        if args:
            raise ConfigurationError(
                f"task {name!r} is a function: its arguments are keyword-only parameters "
                f"(after '*'), given by name; got {len(args)} positional argument(s)"
            )
        settings = _keyword_only(spec.target)
        unknown = sorted(set(kwargs) - set(settings))
        if unknown:
            raise ConfigurationError(
                f"task {name!r} has no keyword-only parameter {unknown}; it has {settings} "
                f"(a function task's arguments come after '*' in its signature)"
            )
    try:
        arguments = pickle.dumps((args, kwargs), protocol=5)
    except Exception:
        _refuse_unpicklable(spec, args, kwargs)
        raise
    return dataclasses.replace(spec, arguments=arguments)


def _refuse_unpicklable(spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Name the argument that cannot be pickled."""
    named = [(f"argument {i}", v) for i, v in enumerate(args)]
    named += [(f"{k}=", v) for k, v in kwargs.items()]
    for label, value in named:
        try:
            pickle.dumps(value, protocol=5)
        except Exception as exc:
            raise ConfigurationError(
                f"{spec.kind} {spec.name!r}: {label} ({type(value).__qualname__}) cannot cross "
                f"processes ({exc}); pass something that pickles (a path, numbers, a "
                "dataclass of them), and open files or models inside the task"
            ) from None


def _keyword_only(fn: Callable[..., Any]) -> list[str]:
    params = inspect.signature(fn).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def unbound_arguments(spec: TaskSpec) -> list[str]:
    """The arguments ``spec`` still needs (none when it can be built as it is)."""
    if spec.arguments is not None:
        return []
    try:
        sig = inspect.signature(spec.target)
    except (TypeError, ValueError):  # a builtin or an object without a signature: nothing known
        return []
    if spec.constructed:
        kinds = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        return [
            p.name
            for p in sig.parameters.values()
            if p.default is inspect.Parameter.empty and p.kind not in kinds
        ]
    return [
        p.name
        for p in sig.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]


def spec_of(obj: Any) -> TaskSpec:
    """The TaskSpec of a decorated function or class (or a TaskSpec itself)."""
    if isinstance(obj, TaskSpec):
        return obj
    spec = getattr(obj, "spec", None) if obj is not None else None
    if isinstance(spec, TaskSpec):
        return spec
    raise ConfigurationError(
        f"expected a task (decorated with @conveyor.task or @conveyor.source), got {obj!r}"
    )


# -- reading the annotations -------------------------------------------------------------------


def _declare(target: Any, kind: Kind, options: dict[str, Any]) -> Any:
    if not callable(target):
        raise ConfigurationError(f"@{kind} expects a function or a class, got {target!r}")
    name = options.pop("name", None) or getattr(target, "__name__", None) or repr(target)
    _check_options(name, options)
    call = _entry_point(target, kind)
    hints = _hints(call, name)
    # Keyword-only parameters are settings given with .bind(...), not messages.
    params = [
        p
        for p in inspect.signature(call).parameters.values()
        if p.name != "self" and p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    batch = options.get("batch", 1)

    if kind == "source":
        if params:
            raise ConfigurationError(
                f"source {name!r} takes parameters {[p.name for p in params]}; a source's "
                "settings are keyword-only parameters (after '*') or a class's __init__ "
                f"arguments, given with {name}.bind(...)"
            )
        yielded = _yielded_type(hints.get("return"), name)
        spec = TaskSpec(name, target, "source", (), yielded, **options)
    else:
        if not params:
            raise ConfigurationError(
                f"task {name!r} takes no input; a task takes one or more messages "
                "(use @conveyor.source for a task that produces messages from nothing)"
            )
        inputs = []
        for p in params:
            if p.name not in hints:
                raise ConfigurationError(
                    f"task {name!r}: parameter {p.name!r} has no type annotation; annotate it "
                    "with the message type it takes (the graph is wired by these types)"
                )
            listed = batch > 1 or options.get("gather") is not None
            what = f"parameter {p.name!r}"
            inputs.append((p.name, _element(hints[p.name], name, what, listed, batch)))
        if "return" not in hints:
            raise ConfigurationError(
                f"task {name!r} has no return annotation; annotate it with the message type it "
                "returns, or '-> None' for a sink"
            )
        output, optional = _output_type(hints["return"], name, batch)
        if options.get("join_on") and len(inputs) < 2:
            raise ConfigurationError(f"task {name!r}: join_on needs two or more inputs to join")
        gather = options.get("gather")
        if gather is not None:
            _check_gather(name, gather, inputs, batch, options)
        if options.get("join_on") and batch > 1:
            raise ConfigurationError(
                f"task {name!r}: a joining task takes one set at a time (batch=1)"
            )
        spec = TaskSpec(
            name,
            target,
            "sink" if output is None else "task",
            tuple(inputs),
            output,
            optional_output=optional,
            **options,
        )
    if spec.replicas != 1 and spec.replicas != "auto" and not spec.replicable:
        why = (
            "a source runs once"
            if kind == "source"
            else "a join takes several inputs"
            if len(spec.inputs) > 1
            else "a stateful task without a key would split its state"
        )
        raise ConfigurationError(
            f"task {name!r} cannot have replicas={spec.replicas}: {why}; replicas suit "
            "stateless one-input tasks, or stateful ones with key=..."
        )
    try:
        target.spec = spec
        if not hasattr(target, "bind"):  # a class of the user's may have its own: cv.bind then
            target.bind = functools.partial(bind, target)
    except (AttributeError, TypeError):
        raise ConfigurationError(f"cannot attach a task spec to {target!r}") from None
    return target


# options with_options may change
_PER_GRAPH = {"max_wait", "timeout", "cost", "retries", "weight"}


def _check_options(name: str, options: dict[str, Any]) -> None:
    resource = options.get("resource", "cpu")
    if resource not in _RESOURCES:
        raise ConfigurationError(
            f"task {name!r}: resource must be one of {_RESOURCES}, got {resource!r}"
        )
    batch = options.get("batch", 1)
    if not isinstance(batch, int) or batch < 1:
        raise ConfigurationError(f"task {name!r}: batch must be a positive int, got {batch!r}")
    weight = options.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or weight <= 0:
        raise ConfigurationError(f"task {name!r}: weight must be a positive number, got {weight!r}")
    for opt in ("max_wait", "timeout", "cost"):
        value = options.get(opt)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise ConfigurationError(
                f"task {name!r}: {opt} must be a non-negative number of seconds, got {value!r}"
            )
    on_error = options.get("on_error", "dead_letter")
    if on_error not in ON_ERROR:
        raise ConfigurationError(
            f"task {name!r}: on_error must be one of {ON_ERROR}, got {on_error!r}"
        )
    retries = options.get("retries", 2)
    if not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"task {name!r}: retries must be an int >= 0, got {retries!r}")
    if "checkpoint" in options:
        ckpt = options["checkpoint"]
        if ckpt is True:
            options["checkpoint"] = Checkpoint()
        elif ckpt is False or ckpt is None:
            options["checkpoint"] = None
        elif not isinstance(ckpt, Checkpoint):
            raise ConfigurationError(
                f"task {name!r}: checkpoint must be a conveyor.Checkpoint, True or False, "
                f"got {ckpt!r}"
            )
    replicas = options.get("replicas", "auto")
    if replicas != "auto" and (not isinstance(replicas, int) or replicas < 1):
        raise ConfigurationError(
            f"task {name!r}: replicas must be a positive int or 'auto', got {replicas!r}"
        )
    node = options.get("node")
    if node is not None and (not isinstance(node, str) or not node):
        raise ConfigurationError(
            f"task {name!r}: node must be a non-empty label (a node's id, address, label "
            f"value or custom resource), got {node!r}"
        )
    if "wire" in options:
        options["wire"] = dict(options["wire"] or {})
    if "join_on" in options:
        join_on = options["join_on"]
        options["join_on"] = (join_on,) if isinstance(join_on, str) else tuple(join_on)


def _check_gather(
    name: str, gather: Any, inputs: list[tuple[str, type]], batch: int, options: dict[str, Any]
) -> None:
    if not isinstance(gather, Gather):
        raise ConfigurationError(
            f"task {name!r}: gather must be a conveyor.Gather(by=..., member=...), got {gather!r}"
        )
    if len(inputs) != 1 or batch > 1 or options.get("join_on"):
        raise ConfigurationError(
            f"gathering task {name!r} takes exactly one parameter, list[T], and no batch or "
            "join_on (the group is its batch)"
        )
    tp = inputs[0][1]
    if dataclasses.is_dataclass(tp):
        fields = {f.name for f in dataclasses.fields(tp)}
        for attr in (gather.by, gather.member):
            if attr not in fields:
                raise ConfigurationError(
                    f"gathering task {name!r} groups {tp.__name__} by {attr!r}, which is not "
                    f"one of its fields {sorted(fields)}"
                )


def _entry_point(target: Any, kind: Kind) -> Callable[..., Any]:
    if not inspect.isclass(target):
        return cast(Callable[..., Any], target)
    method = "__iter__" if kind == "source" else "__call__"
    if method not in vars(target) and not any(method in vars(b) for b in target.__mro__[1:-1]):
        raise ConfigurationError(f"class {target.__name__!r} used as a {kind} must define {method}")
    return cast(Callable[..., Any], getattr(target, method))


def _hints(call: Callable[..., Any], name: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(call)
    except Exception as exc:
        raise ConfigurationError(
            f"task {name!r}: cannot resolve its type annotations "
            f"({exc}); define the message types before the task"
        ) from exc


def _is_list(tp: Any) -> bool:
    return typing.get_origin(tp) in (list, collections.abc.Sequence)


def _element(tp: Any, name: str, what: str, listed: bool, batch: int = 1) -> type:
    if listed:
        if not _is_list(tp):
            takes = f"up to {batch} items at once" if batch > 1 else "a group of messages"
            raise ConfigurationError(
                f"{'batch' if batch > 1 else 'gathering'} task {name!r}: {what} must be "
                f"annotated list[T] (it receives {takes}), got {_show(tp)}"
            )
        (tp,) = typing.get_args(tp) or (Any,)
    if not isinstance(tp, type):
        raise ConfigurationError(
            f"task {name!r}: {what} must be annotated with a message class, got {_show(tp)}"
        )
    return tp


def _output_type(tp: Any, name: str, batch: int) -> tuple[type | None, bool]:
    if tp is type(None):
        if batch > 1:
            raise ConfigurationError(
                f"batch task {name!r} returns None; a batch task returns "
                "list[T] with one result per input"
            )
        return None, False
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1:
            raise ConfigurationError(
                f"task {name!r} returns {_show(tp)}; return one message "
                "type (optionally '| None' to produce nothing)"
            )
        tp, optional = args[0], True
    return _element(tp, name, "its return", batch > 1, batch), optional


def _yielded_type(tp: Any, name: str) -> type:
    origin = typing.get_origin(tp)
    iterables = (collections.abc.Iterator, collections.abc.Iterable, collections.abc.Generator)
    if origin not in iterables or not typing.get_args(tp):
        raise ConfigurationError(
            f"source {name!r} must be annotated '-> Iterator[T]' (a generator of one message "
            f"type), got {_show(tp)}"
        )
    out = typing.get_args(tp)[0]
    if not isinstance(out, type):
        raise ConfigurationError(f"source {name!r} must yield a message class, got {_show(out)}")
    return out


def _show(tp: Any) -> str:
    if tp is None:
        return "no annotation"
    return getattr(tp, "__name__", None) or repr(tp)
