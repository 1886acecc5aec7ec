"""cli: the ``pagestore`` command (also ``python -m pagestore``).

    pagestore bench [--records N] [--compare sqlite,lmdb] [--json FILE]
    pagestore stats|check|inspect|dump|compact DB
    pagestore backup DB DEST
    pagestore load DB < records.jsonl
    pagestore get|put|delete|scan DB ...

Built on click: every command gets ``--help``, option parsing and usage
errors behave the same everywhere, and the whole thing is tested by running
it as a subprocess. The commands call the public API (``pagestore.open`` and
the Store's methods) and, for ``inspect`` and the page sweep of ``check``,
the read-only helpers in ``pagestore.inspect``.

Errors a user can cause (a missing file, a file that is not a store, a
locked store, a corrupt page, a missing key, a bad argument) print one line,
``pagestore: error: ...``, to stderr and exit 1; usage errors exit 2. A
traceback means a bug in pagestore. See docs/cli.md.
"""
from __future__ import annotations

import base64
import binascii
import errno
import io
import itertools
import json
import os
import re
import sys
from contextlib import ExitStack, contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import click

from . import codecs
from . import format as fmt
from . import jsonshape
from .errors import CorruptionError, InvalidFileError, NotFoundError, PageStoreError
from .store import Store
from .store import open as open_store
from .store import remove as remove_store

#: Exit status of a command that failed on a user error (usage errors are click's 2).
EXIT_ERROR = 1
#: Exit status of ``dump --salvage`` when it skipped damaged pages (it saved the rest).
EXIT_SALVAGED = 3
#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: Default records for ``pagestore bench``: about half a minute per engine here.
BENCH_RECORDS = 50_000
#: Records per transaction in ``pagestore load``.
LOAD_BATCH = 1000


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


class UserError(click.ClickException):
    """UserError is a failure the user can fix; it prints as one ``pagestore: error:`` line."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"pagestore: error: {self.format_message()}", err=True)


#: A parenthetical hint of the Python API, such as "(create=True makes a new store in it)".
_PYTHON_HINT = re.compile(r"\s*\([^()]*\bcreate=True\b[^()]*\)")


def describe(exc: BaseException, path: Optional[str] = None) -> str:
    """describe turns an exception from pagestore or the OS into one line of text."""
    if isinstance(exc, CorruptionError):
        return f"{path}: {exc}" if path and not str(exc).startswith(path) else str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, PageStoreError):
        where = exc.filename or path or ""
        if isinstance(exc, FileNotFoundError):
            if exc.strerror and "directory" in exc.strerror:
                return f"{where}: {exc.strerror}"  # the directory is what is missing
            return f"{where}: no such file"
        if isinstance(exc, IsADirectoryError):
            return f"{where}: is a directory, not a store file"
        if isinstance(exc, PermissionError):
            detail = exc.strerror if exc.strerror and exc.strerror.startswith("permission denied:") else "permission denied"
            return f"{where}: {detail}"
        return f"{where}: {exc.strerror or exc}" if where else str(exc)
    text = str(exc).strip() or type(exc).__name__
    # The API's hints name Python arguments ("create=True"), which no command takes.
    text = _PYTHON_HINT.sub("", text.splitlines()[0])
    return text


class _Group(click.Group):
    """_Group turns the errors a user can cause into UserError, once, for every command."""

    def make_context(self, info_name: Optional[str], args: List[str], parent: Optional[click.Context] = None,
                     **extra: Any) -> click.Context:
        # `pagestore --help | true`, `pagestore --version | head -0`: the group's own options print
        # while its context is made, before ``invoke``; click's main exits 1 on that EPIPE, with
        # nothing said. The closed-pipe rule of every command: exit 0, quietly.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:
            quiet_stdout()
            raise click.exceptions.Exit(0) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("pagestore: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # The reader went away (`pagestore dump db | head`): a normal end,
            # so exit 0, quietly. Point stdout at devnull so that Python's own
            # flush at exit does not fail again and print "Exception ignored"
            # (the recipe in the signal module's documentation).
            quiet_stdout()
            ctx.exit(0)
        except (PageStoreError, OSError, ValueError) as exc:
            if not ctx.meta.get(_WRITES_KEY):
                _raise_if_stdout_full(exc)
            raise UserError(describe(exc, ctx.meta.get(_DB_KEY))) from exc


def _raise_if_stdout_full(exc: BaseException) -> None:
    """_raise_if_stdout_full: a command that opened no store for writing writes nothing but its
    output, so a full disk (no file named) under ``> file`` or /dev/full is stdout's, not the
    store's: say so (quietly: Python's flush at exit would fail on it again)."""
    if (isinstance(exc, OSError) and not isinstance(exc, PageStoreError) and exc.filename is None
            and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)):
        quiet_stdout()
        raise UserError(f"stdout: {exc.strerror or exc}") from exc


def quiet_stdout() -> None:
    """quiet_stdout points stdout at devnull after its reader went away, so that Python's own
    flush at exit does not fail again and print "Exception ignored"."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextmanager
def opened(path: str, *, write: bool = False, create: bool = False, **options: Any) -> Iterator[Store]:
    """opened opens a store for a command: read-only unless ``write``; closes it after.

    Only ``create`` (put and load) makes a store, and only where no file is:
    an existing file, empty or not, must already be a store, the same for
    every command. A store this call made is removed again if the command
    fails before anything was committed to it: a failed command leaves no
    new file. Errors from opening or using it become one-line UserErrors
    naming ``path``.
    """
    fresh = write and create and not os.path.lexists(path)
    if write:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[_WRITES_KEY] = True  # its errors may be the store's disk's
    if not write:
        options.update(readonly=True, create=False)
    else:
        options.update(create=fresh)
    # The commands handle keys and values as the encoded bytes in the file
    # and show them in each codec's JSON shape (jsonshape.py): nothing is
    # unpickled, and a custom codec's store still opens.
    options["keys"] = codecs.RAW if options.get("keys") is None else codecs.raw_key_codec(options["keys"])
    options["values"] = codecs.RAW if options.get("values") is None else codecs.raw_value_codec(options["values"])
    try:
        db = open_store(path, **options)
        try:
            yield db
        except BaseException:
            empty = fresh and _is_empty(db)
            db.close()
            if empty:
                remove_store(path)
            raise
        db.close()
    except (PageStoreError, OSError, ValueError) as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        if not write:
            _raise_if_stdout_full(exc)
        if isinstance(exc, jsonshape.ShapeError):
            raise UserError(str(exc)) from exc
        raise UserError(describe(exc, path)) from exc


def _is_empty(db: Store) -> bool:
    try:
        return len(db) == 0
    except PageStoreError:
        return False  # cannot tell: keep the file


# --------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------


def human_bytes(n: Optional[float]) -> str:
    """human_bytes: 1536 -> "1.5 KiB"; binary units, one decimal."""
    if n is None:
        return "-"
    for scale, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {suffix}"
    return f"{n:.0f} B"


def percent(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def kv_table(rows: List[Tuple[str, str]]) -> str:
    """kv_table lays out (label, value) rows as two aligned columns."""
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def type_counts(types: Dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------
# key and value encodings
# --------------------------------------------------------------------------


def encoding_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """encoding_options adds --text (default), --hex and --base64: how keys and values are written."""
    fn = click.option("--base64", "encoding", flag_value="base64", help="Keys and values are base64, in and out.")(fn)
    fn = click.option("--hex", "encoding", flag_value="hex", help="Keys and values are hex, in and out.")(fn)
    fn = click.option(
        "--text", "encoding", flag_value="text", default=True, help="Keys and values are UTF-8 text (default)."
    )(fn)
    return fn


def decode_arg(text: str, encoding: str, what: str) -> bytes:
    """decode_arg turns a command-line argument into bytes.

    Raises:
        UserError: not valid hex or base64.
    """
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise UserError(f"{what} is not valid {encoding}: {text!r}") from exc
    return text.encode("utf-8", "surrogateescape")


def encode_out(data: bytes, encoding: str) -> str:
    """encode_out renders bytes for the terminal; text shows invalid UTF-8 as \\xNN escapes."""
    if encoding == "hex":
        return data.hex()
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", "backslashreplace")


def codec_names(store: Store) -> Tuple[str, str]:
    """codec_names: the key and value codec names the store recorded (it is open with codecs.RAW)."""
    return store.key_codec.name, store.value_codec.name


def key_arg(store: Store, text: str, encoding: str, what: str) -> bytes:
    """key_arg: a command-line key as the store's encoded key.

    str, int and tuple keys are typed as text (a JSON array for tuples);
    bytes keys, and a custom codec's encoded bytes, as --text, --hex or --base64.
    """
    raw = jsonshape.key_from_text(store.key_codec.name, text)
    return decode_arg(text, encoding, what) if raw is None else raw


def key_out(store: Store, raw: bytes, encoding: str) -> str:
    """key_out: an encoded key for the terminal, in the codec's shape (bytes keys: the --text/--hex/--base64 encoding)."""
    name = store.key_codec.name
    if name in codecs.KEY_CODECS and name != "bytes":
        return jsonshape.text_of(jsonshape.key_to_json(name, raw))
    return encode_out(raw, encoding)


def value_arg(store: Store, text: str, encoding: str) -> bytes:
    """value_arg: a command-line value as the store's encoded value (pickles and custom values: base64 by default)."""
    name = store.value_codec.name
    raw = jsonshape.value_from_text(name, text)
    if raw is not None:
        return raw
    if name != "bytes" and encoding == "text":
        encoding = "base64"  # opaque bytes are not typed as text
    return decode_arg(text, encoding, "VALUE")


def value_out(store: Store, raw: bytes, encoding: str) -> str:
    """value_out: an encoded value for the terminal, in the codec's shape (pickles and custom values: base64 by default)."""
    name = store.value_codec.name
    if name in ("str", "json", "numpy"):
        return jsonshape.text_of(jsonshape.value_to_json(name, raw))
    if name != "bytes" and encoding == "text":
        encoding = "base64"
    return encode_out(raw, encoding)


# --------------------------------------------------------------------------
# progress
# --------------------------------------------------------------------------


class PhaseBars:
    """PhaseBars draws one tqdm bar per phase on stderr, from ``progress(phase, done, total)`` calls."""

    def __init__(self, enabled: Optional[bool]) -> None:
        # enabled=None: only when stderr is a terminal (tqdm's own rule).
        self.enabled = enabled
        self.phase: Optional[str] = None
        self.bar: Any = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.enabled is False:
            return
        if phase != self.phase:
            self.close()
            from tqdm import tqdm

            self.phase = phase
            self.bar = tqdm(
                total=total,
                desc=phase.ljust(24),
                unit="op",
                unit_scale=True,
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
                disable=None if self.enabled is None else False,
            )
        bar = self.bar
        if total != bar.total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.phase = None


progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bars on stderr (default: only when stderr is a terminal).",
)


# --------------------------------------------------------------------------
# the commands
# --------------------------------------------------------------------------

#: ctx.meta key under which a command's DB argument is kept, so error lines can name the file.
_DB_KEY = "pagestore.db"
#: ctx.meta key set once a command opens its store for writing (its disk's errors are then its own).
_WRITES_KEY = "pagestore.writes"


def _remember_db(ctx: click.Context, param: click.Parameter, value: str) -> str:
    ctx.meta[_DB_KEY] = value  # meta is shared by the group's context and the command's
    return value


db_argument = click.argument("db", type=click.Path(dir_okay=True, path_type=str), callback=_remember_db)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pagestore-kv", prog_name="pagestore")
def cli() -> None:
    """pagestore: an embeddable, crash-safe ordered key-value store.

    DB is a store file (its log lives beside it as DB-wal). Run
    `pagestore bench` to measure this machine; see docs/cli.md.
    """


@cli.command(short_help="Measure pagestore (and other engines) on this machine.")
@click.option("--records", "-n", type=click.IntRange(min=1), default=BENCH_RECORDS, show_default=True,
              help="Records in the initial load (churn and durable puts add more).")
@click.option("--page-size", type=int, default=4096, show_default=True, help="Page size of the store (and of sqlite).")
@click.option("--compare", "compare", default="", metavar="ENGINES",
              help="Also run these engines, comma-separated: sqlite, lmdb, rocksdb, leveldb, or 'all'.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True, allow_dash=True), default=None,
              help="Also write the full results as JSON to FILE ('-': stdout, and the table goes to stderr).")
@click.option("--seed", type=int, default=0, show_default=True, help="Dataset and operation order seed.")
@click.option("--workdir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Where the temporary stores go (default: the system temp dir). Measure the disk you care about.")
@progress_option
def bench(records: int, page_size: int, compare: str, json_path: Optional[str], seed: int,
          workdir: Optional[str], progress: Optional[bool]) -> None:
    """Run the benchmark workload in a temporary store and print the results.

    Inserts (1000 per durable transaction) of variable-length records, point
    reads, a full scan, short range scans, three rounds of churn (delete half,
    insert as many), and single durable puts; then file size against live
    bytes and page fill. With --compare, the same workload runs on the other
    engines in this process, with ratios to pagestore side by side.
    """
    from . import bench as workload

    if not fmt.is_valid_page_size(page_size):
        raise click.BadParameter(f"must be a power of two from 512 to 65536, not {page_size}",
                                 param_hint="--page-size")
    # Everything that can be refused is refused before the run, which takes minutes.
    engines = ["pagestore"] + bench_engines(compare)
    if json_path is not None and json_path != "-":
        check_writable(json_path, "--json")
    bars = PhaseBars(progress)
    try:
        results = workload.run(engines, n=records, page_size=page_size, seed=seed, progress=bars, workdir=workdir)
    finally:
        bars.close()
    table = workload.format_table(results) + "\n" + bench_summary(results)
    click.echo(table, err=json_path == "-")  # first: a failure to save the JSON must not lose it
    if json_path is not None:
        text = workload.to_json(results) + "\n"
        if json_path == "-":
            click.echo(text, nl=False)
        else:
            with open(json_path, "w", encoding="utf-8") as f:
                f.write(text)
    failed = [name for name, e in results["engines"].items() if "error" in e]
    if failed or "phases" not in results["engines"].get("pagestore", {}):
        why = results["engines"].get("pagestore", {}).get("skipped")
        raise UserError(f"bench failed for {', '.join(failed) or 'pagestore'}" + (f": {why}" if why else ""))


def bench_engines(compare: str) -> List[str]:
    """bench_engines: the engines named by ``--compare`` (besides pagestore), each known and installed.

    Raises:
        UserError: an unknown engine (listing the known ones), or one whose
            package is missing (saying what installs it).
    """
    from . import bench as workload

    names = [name.strip().lower() for name in compare.split(",") if name.strip()]
    if "all" in names:  # every engine that can run here; the table notes the others
        return [name for name in workload.ENGINES if name != "pagestore"]
    out: List[str] = []
    for name in names:
        try:
            adapter = workload.get_adapter(name)
        except KeyError:
            raise UserError(f"--compare: unknown engine {name!r} (known: {', '.join(workload.ENGINES)}, all)") from None
        why = type(adapter).available()
        if why is not None:
            raise UserError(f"--compare: {adapter.name} cannot run here: {why}")
        if adapter.name != "pagestore" and adapter.name not in out:
            out.append(adapter.name)
    return out


def check_writable(path: str, option: str) -> None:
    """check_writable refuses an output file that could not be written, without creating it.

    Raises:
        UserError: its directory does not exist or is not writable, or it is
            a directory or a file we may not write.
    """
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UserError(f"{option} {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise UserError(f"{option} {path}: is a directory")
    if not os.access(path if os.path.exists(path) else parent, os.W_OK):
        raise UserError(f"{option} {path}: permission denied")


def bench_summary(results: Dict[str, Any]) -> str:
    """bench_summary: the lines format_table does not give: pagestore's pages, fill and log at the end."""
    e = results.get("engines", {}).get("pagestore", {})
    st = e.get("stats") or {}
    space = e.get("space") or {}
    lines = []
    if space:
        lines.append(
            f"pagestore space after churn: {human_bytes(space.get('file_bytes'))} on disk (data file + log) "
            f"for {human_bytes(space.get('live_bytes'))} of live keys+values in {space.get('live_records', 0):,} records"
        )
    if st:
        lines.append(
            f"pagestore at the end: {st.get('page_count', 0):,} pages of {st.get('page_size')} B "
            f"({type_counts(st.get('page_types', {}))}), average fill {percent(st.get('average_fill'))}, "
            f"tree height {st.get('tree_height')}"
        )
    return "\n".join(lines)


@cli.command(short_help="Sizes, records, page types and fill.")
@db_argument
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON (exact bytes).")
def stats(db: str, as_json: bool) -> None:
    """Print sizes, record count, page types and fill of DB (read-only)."""
    with opened(db) as store:
        st = store.stats()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    live = st["live_bytes"]
    on_disk = st["file_size"] + st["wal_size"]
    rows = [
        ("store", st["path"]),
        ("records", f"{st['records']:,}"),
        ("live bytes", f"{human_bytes(live)} (keys + values)"),
        ("file size", f"{human_bytes(st['file_size'])} ({st['page_count']:,} pages of {human_bytes(st['page_size'])})"),
        ("log size", f"{human_bytes(st['wal_size'])} (the file size above is the data file alone)"),
        ("on disk / live", f"{on_disk / live:.2f}" if live else "-"),
        ("free pages", f"{st['free_pages']:,}"),
        ("free space", f"{human_bytes(st['free_bytes'])} ({percent(st['fragmentation'])} of the pages: "
                       "free pages and room inside pages in use)"),
        ("overflow pages", f"{st['overflow_pages']:,}"),
        ("tree height", str(st["tree_height"])),
        ("average fill", percent(st["average_fill"])),
        ("page types", type_counts(st["page_types"]) or "-"),
    ]
    click.echo(kv_table(rows))


@cli.command(short_help="Verify every invariant; exit 1 naming bad pages.")
@db_argument
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(db: str, as_json: bool) -> None:
    """Verify every invariant of DB (read-only); exit 1 naming the bad pages if any.

    Checks key order and tree shape, every record reachable once, overflow
    chains, the free-space map and the free list, and that every page is
    accounted for. On failure, every page is also read once so that all
    pages failing their checksum or structure are named, not just the first.
    """
    from . import inspect

    try:
        with open_store(db, readonly=True, create=False) as store:
            counts = store.check()
    except CorruptionError as exc:
        bad: Dict[int, str] = {}
        if exc.pgno is not None:
            bad[exc.pgno] = exc.detail
        try:
            with inspect.open_pager(db) as pager:
                for pgno, why in inspect.verify_pages(pager):
                    bad.setdefault(pgno, why)
        except PageStoreError:
            pass  # the header itself is bad: the check's own error says so
        pages = sorted(bad)
        text = str(exc)
        text = text[len(db) + 2 :] if text.startswith(f"{db}: ") else text
        try:
            if as_json:
                click.echo(json.dumps({"ok": False, "error": text, "pages": [
                    {"pgno": p, "error": bad[p]} for p in pages]}, indent=2))
            else:
                click.echo(f"{db}: CORRUPT")
                for p in pages[:50]:
                    click.echo(f"  page {p}: {bad[p]}")
                if len(pages) > 50:
                    click.echo(f"  ... and {len(pages) - 50} more pages")
        except BrokenPipeError:
            # `pagestore check BAD | head -1`: the reader went away, but the store is still
            # corrupt: exit 1 all the same (the closed-pipe rule's exit 0 is for output only).
            quiet_stdout()
        named = ", ".join(str(p) for p in pages[:20]) + (", ..." if len(pages) > 20 else "")
        raise UserError(f"{db}: check failed: {text}" + (f" (bad pages: {named})" if len(pages) > 1 else "")) from exc
    if as_json:
        click.echo(json.dumps({"ok": True, **counts}, indent=2))
        return
    click.echo(
        f"{db}: OK: {counts['records']:,} records in {counts['pages']:,} pages "
        f"({counts.get('tree_pages', 0):,} tree, {counts['heap_pages']:,} heap, "
        f"{counts['overflow_pages']:,} overflow, {counts['free_pages']:,} free); "
        f"tree height {counts.get('tree_height', '?')}"
    )


@cli.command(name="inspect", short_help="Page types, fill histogram, one page decoded, SVG map.")
@db_argument
@click.option("--page", "pgno", type=click.IntRange(min=0), default=None, metavar="N",
              help="Decode page N: header fields and slot directory (0: the file header).")
@click.option("--map", "map_path", type=click.Path(dir_okay=False, allow_dash=True), default=None, metavar="FILE.svg",
              help="Draw the file as a grid of pages, coloured by type and shaded by fill ('-': to stdout).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (or the page) as JSON.")
@click.option("--preview", "preview_bytes", type=click.IntRange(min=0), default=16, show_default=True,
              help="Bytes of each record shown in --page's hex preview.")
def inspect_cmd(db: str, pgno: Optional[int], map_path: Optional[str], as_json: bool, preview_bytes: int) -> None:
    """Show the pages of DB: types, fill histogram, free list, log (read-only).

    Keeps going past pages that fail verification, and lists them.
    """
    from . import inspect

    if map_path == "-" and (pgno is not None or as_json):
        raise click.UsageError("--map - writes the SVG to stdout: it cannot be combined with --page or --json")
    if map_path is not None and map_path != "-":
        check_writable(map_path, "--map")
    opening = ExitStack()
    try:
        pager = opening.enter_context(inspect.open_pager(db))
    except (CorruptionError, InvalidFileError):
        if pgno is None:
            raise
        # A file that will not open (its header damaged, say): its pages one by one, as salvage reads them.
        page = inspect.decode_page_of_file(db, pgno, preview_bytes)
        click.echo(json.dumps(page, indent=2) if as_json else format_page(page))
        return
    with opening:
        if map_path is not None:
            svg = inspect.render_svg(pager)
            if map_path == "-":
                click.echo(svg, nl=False)
                return
            with open(map_path, "w", encoding="utf-8") as f:
                f.write(svg)
            click.echo(f"wrote {map_path} ({pager.meta.page_count:,} pages)", err=True)
            if pgno is None and not as_json:
                return
        if pgno is not None:
            page = inspect.decode_page(pager, pgno, preview_bytes)
            click.echo(json.dumps(page, indent=2) if as_json else format_page(page))
            return
        summary = inspect.summarize(pager)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary))


def format_summary(s: Dict[str, Any]) -> str:
    """format_summary renders inspect.summarize's result for a terminal."""
    from .inspect import FILL_BUCKETS

    rows = [
        ("file", f"{s['path']}: {human_bytes(s['file_size'])}, {s['page_count']:,} pages of {s['page_size']} B"),
        ("log", f"{human_bytes(s['wal_size'])} ({s['wal_frames']:,} pages with a committed image in the log)"),
        ("records", f"{s['header']['record_count']:,} ({human_bytes(s['header']['live_bytes'])} of keys + values)"),
        ("tree", f"root page {s['header']['root']}, height {s['header']['tree_height']}"),
        ("free list", f"{s['freelist_length']:,} pages" if s["freelist_length"] is not None
         else f"unreadable: {s['freelist_error']}"),
        ("average fill", percent(s["average_fill"]) + " (pages in use)"),
    ]
    lines = [kv_table(rows), "", "page types (page 0, the file header, not counted):"]
    types = s["page_types"]
    width = max((len(k) for k in types), default=4)
    for name, count in sorted(types.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {name.ljust(width)}  {count:>9,}")
    fill = s["fill"]
    if fill:
        kinds = sorted(fill, key=lambda k: -sum(fill[k]))
        lines += ["", "fill distribution (pages per 10% band; free pages left out):"]
        cols = [max(len(k), 6) for k in kinds]
        lines.append("  " + "band".ljust(9) + "  ".join(k.rjust(w) for k, w in zip(kinds, cols)))
        totals = [sum(fill[k][b] for k in kinds) for b in range(FILL_BUCKETS)]
        peak = max(totals) or 1
        for b in range(FILL_BUCKETS):
            band = f"{10 * b:>3}-{10 * (b + 1)}%".ljust(9)
            cells = "  ".join(f"{fill[k][b]:>{w},}" for k, w in zip(kinds, cols))
            bar = "#" * round(30 * totals[b] / peak)
            lines.append(f"  {band}{cells}  {bar}".rstrip())
    if s["corrupt"]:
        lines += ["", f"{len(s['corrupt'])} pages FAIL verification:"]
        for c in s["corrupt"][:50]:
            lines.append(f"  page {c['pgno']}: {c['error']}")
        if len(s["corrupt"]) > 50:
            lines.append(f"  ... and {len(s['corrupt']) - 50} more")
    return "\n".join(lines)


def format_page(p: Dict[str, Any]) -> str:
    """format_page renders inspect.decode_page's result for a terminal."""
    note = f"({p['notes']})\n" if p.get("notes") else ""
    if p["kind"] == "header":
        head = "page 0: file header"
        if not p["verified"]:
            head += f" -- FAILS VERIFICATION: {p['error']} (decoded anyway)"
        return note + head + "\n" + kv_table([(k, str(v)) for k, v in p["fields"].items()])
    head = note + f"page {p['pgno']}: {p['kind']}"
    if not p["verified"]:
        head += f" -- FAILS VERIFICATION: {p['error']} (decoded anyway)"
    f = p["fields"]
    rows = [(k, str(v)) for k, v in f.items()]
    rows += [
        ("contiguous free", f"{p['contiguous_free']} B (upper - lower)"),
        ("free space", f"{p['free_space']} B (after compaction)"),
        ("fill", percent(p["fill"])),
    ]
    lines = [head, kv_table(rows), "", f"slot directory ({len(p['slots'])} slots):"]
    lines.append("  slot  offset  length  state     record")
    for s in p["slots"]:
        lines.append(f"  {s['slot']:>4}  {s['offset']:>6}  {s['length']:>6}  {s['state']:<8}  {s.get('preview', '')}".rstrip())
    if p.get("slots_truncated"):
        lines.append(f"  ... {p['slots_truncated']} more slots claimed by the header lie past the end of the page")
    return "\n".join(lines)


@cli.command(short_help="Write every record as JSON lines to stdout.")
@db_argument
@click.option("--salvage", is_flag=True,
              help="Skip damaged pages (named on stderr) and write every record still readable; exit 3 if any were skipped.")
def dump(db: str, salvage: bool) -> None:
    """Write every record of DB to stdout as JSON lines, in key order (read-only).

    One {"k": base64, "v": base64} object per line. Streams: memory stays
    bounded however large the store. Read back with `pagestore load`.
    A store with other codecs than bytes to bytes starts with a line
    {"codecs": {"keys": ..., "values": ...}} and writes each key and value
    in its codec's JSON shape (docs/cli.md); a pickle is never loaded.

    A damaged page stops a dump with an error naming it. With --salvage the
    dump reads every page of the file on its own, as SQLite's .recover does:
    every intact leaf's keys and every intact heap page's values, needing
    neither the file header (beyond its page size), nor the root, nor the
    free-space map; a record is written when its key and its value are both
    intact, exactly as stored. It names the damaged pages on stderr and exits
    3 if there were any, 0 if none. A file that will not open (a damaged
    header) is read without the header's checks, its log included.
    """
    from . import salvage as rescue

    damaged: List[int] = []
    if not salvage:
        with opened(db) as store:
            _write_dump(store.items(), codec_names(store))
        return
    sound: Optional[Store] = None
    try:
        sound = open_store(db, readonly=True, create=False, keys=codecs.RAW, values=codecs.RAW)
    except (CorruptionError, InvalidFileError) as exc:
        refused = exc
    if sound is not None:
        with sound:
            _write_dump(sound.salvage(damaged), codec_names(sound))
    else:
        source = rescue.FileSource(db)
        try:
            notes = list(source.notes)
            names = source.codec_names
            if names is None:
                names = ("bytes", "bytes")
                notes.append("the codec names are unreadable: keys and values written as bytes")
            click.echo(f"pagestore: salvage: {describe(refused, db)}; reading its pages one by one"
                       + "".join(f"; {n}" for n in notes), err=True)
            _write_dump(rescue.salvage_source(source, damaged), names)
        finally:
            source.close()
    if damaged:
        n = len(damaged)
        click.echo(f"pagestore: salvage: skipped {n} damaged page{'s' if n > 1 else ''} "
                   f"of {db}: {page_ranges(damaged)}; every other record was written", err=True)
        click.get_current_context().exit(EXIT_SALVAGED)


def _write_dump(records: Iterable[Tuple[bytes, bytes]], names: Tuple[str, str]) -> None:
    """_write_dump writes encoded records as dump's JSON lines (with the codecs' header line
    unless both codecs are bytes) to stdout."""
    out = sys.stdout
    b64 = base64.b64encode
    kname, vname = names
    if (kname, vname) == ("bytes", "bytes"):
        for k, v in records:
            out.write('{"k":"%s","v":"%s"}\n' % (b64(k).decode("ascii"), b64(v).decode("ascii")))
    else:
        out.write(jsonshape.header_line(kname, vname) + "\n")
        for k, v in records:
            out.write(jsonshape.dump_line(kname, vname, k, v) + "\n")
    out.flush()


def page_ranges(pgnos: Iterable[int]) -> str:
    """page_ranges: page numbers sorted, runs written as ranges: ``"17, 230-1200"``."""
    out: List[str] = []
    run: List[int] = []
    for p in sorted(pgnos):
        if run and p == run[-1] + 1:
            run.append(p)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [p]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


@cli.command(short_help="Read JSON lines (from dump) into DB.")
@db_argument
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--batch", type=click.IntRange(min=1), default=LOAD_BATCH, show_default=True,
              help="Records per transaction.")
@click.option("--page-size", type=int, default=4096, show_default=True, help="Page size if DB is created.")
@progress_option
def load(db: str, source: Any, batch: int, page_size: int, progress: Optional[bool]) -> None:
    """Read JSON lines ({"k": base64, "v": base64}) from SOURCE (default stdin) into DB.

    Creates DB if it does not exist; existing keys are overwritten. Commits
    every --batch records as one transaction (``Store.update``: built
    bottom-up while the store has no records and the keys come in order, as
    a dump's do); if a line is bad, the batches before it stay committed and
    the error names the line. A dump that starts with a {"codecs": ...} line
    is read in those codecs' JSON shapes, into a store with those codecs
    (created so, or already so).
    """
    from tqdm import tqdm

    loaded = 0
    lines = enumerate(source, 1)
    names = ("bytes", "bytes")
    first: List[Tuple[int, bytes]] = []
    for lineno, line in lines:
        if line.strip():
            try:
                header = jsonshape.parse_header(json.loads(line))
            except ValueError as exc:  # not JSON (parse_record names the line) or a bad header
                header = None
                if isinstance(exc, jsonshape.ShapeError):
                    raise UserError(f"line {lineno}: {exc}") from exc
            if header is None:
                first.append((lineno, line))
            else:
                names = header
            break
    typed = names != ("bytes", "bytes")
    bar = tqdm(desc="load", unit="rec", unit_scale=True, file=sys.stderr, disable=None if progress is None else not progress)
    try:
        with opened(db, write=True, create=True, page_size=page_size, keys=names[0], values=names[1]) as store:
            pending: List[Tuple[bytes, bytes]] = []

            def flush() -> None:
                # One atomic commit per batch; into a store with no records (the first
                # batch of a load into a new store) a dump's key order is built bottom-up.
                store.update(pending)
                bar.update(len(pending))
                pending.clear()

            for lineno, line in itertools.chain(first, lines):
                if not line.strip():
                    continue
                pending.append(parse_typed_record(line, lineno, *names) if typed else parse_record(line, lineno))
                if len(pending) >= batch:
                    flush()
                    loaded += batch
            if pending:
                loaded += len(pending)
                flush()
    finally:
        bar.close()
    click.echo(f"loaded {loaded:,} records into {db}", err=True)


def parse_record(line: bytes, lineno: int) -> Tuple[bytes, bytes]:
    """parse_record decodes one dump line into ``(key, value)``. Raises UserError naming the line."""
    try:
        obj = json.loads(line)
        return base64.b64decode(obj["k"], validate=True), base64.b64decode(obj["v"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise UserError(f"line {lineno}: not a record {{\"k\": base64, \"v\": base64}} ({type(exc).__name__}: {exc})") from exc


def parse_typed_record(line: bytes, lineno: int, kname: str, vname: str) -> Tuple[bytes, bytes]:
    """parse_typed_record decodes one line of a typed dump into encoded ``(key, value)``. Raises UserError naming the line."""
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict) or set(obj) != {"k", "v"}:
            raise ValueError('not a record {"k": ..., "v": ...}')
        return jsonshape.key_from_json(kname, obj["k"]), jsonshape.value_from_json(vname, obj["v"])
    except (ValueError, TypeError) as exc:
        raise UserError(f"line {lineno}: not a record of a keys={kname!r}, values={vname!r} dump ({exc})") from exc


@cli.command(short_help="Rewrite DB densely; report bytes returned.")
@db_argument
def compact(db: str) -> None:
    """Rewrite DB densely and shrink the file; report the bytes returned to the OS."""
    with opened(db, write=True) as store:
        stats = store.stats()
        before = stats["file_size"] + stats["wal_size"]
        returned = store.compact()
    after = os.path.getsize(db)  # closed: the log is gone
    click.echo(f"{db}: {human_bytes(before)} -> {human_bytes(after)}; {human_bytes(returned)} returned ({returned:,} bytes)")


@cli.command(short_help="Copy DB, as of one commit, to DEST.")
@db_argument
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
def backup(db: str, dest: str, force: bool) -> None:
    """Write a consistent copy of DB to the new file DEST (Store.backup).

    The copy holds DB as of one commit, every page verified on the way; it
    is written beside DEST, synced and renamed into place, and opens as a
    store of its own. DEST must not exist unless --force is given.
    """
    if not force and os.path.lexists(dest):
        raise UserError(f"{dest}: exists (--force replaces it)")
    with opened(db) as store:
        records = store.backup(dest, overwrite=force)
    click.echo(f"{db}: {records:,} records backed up to {dest} ({human_bytes(os.path.getsize(dest))})")


@cli.command(short_help="Print the value of KEY.")
@db_argument
@click.argument("key")
@encoding_options
@click.option("--raw", is_flag=True, help="Write the value's exact bytes, no newline (ignores the encoding for output).")
def get(db: str, key: str, encoding: str, raw: bool) -> None:
    """Print the value of KEY in DB (read-only); exit 1 if it is missing.

    KEY and the value are typed as the store's codecs say (docs/cli.md):
    a str key as text, an int key in decimal, a tuple key as a JSON array.
    """
    with opened(db) as store:
        k = key_arg(store, key, encoding, "KEY")
        try:
            value = store[k]
        except NotFoundError:
            raise UserError(f"key not found: {key_out(store, k, encoding)!r}") from None
        text = None if raw else value_out(store, value, encoding)
    if text is None:
        sys.stdout.buffer.write(value)
        sys.stdout.flush()
    else:
        click.echo(text)


@cli.command(short_help="Set KEY to VALUE.")
@db_argument
@click.argument("key")
@click.argument("value", required=False)
@encoding_options
@click.option("--keys", "key_codec", type=click.Choice(list(codecs.KEY_CODECS)), default=None,
              help="Key codec of a store this command creates (an existing store must have it).")
@click.option("--values", "value_codec", type=click.Choice(list(codecs.VALUE_CODECS)), default=None,
              help="Value codec of a store this command creates (an existing store must have it).")
def put(db: str, key: str, value: Optional[str], encoding: str, key_codec: Optional[str], value_codec: Optional[str]) -> None:
    """Set KEY to VALUE in DB (created if missing); without VALUE, read it from stdin.

    KEY and VALUE are typed as the store's codecs say (docs/cli.md). A
    bytes value read from stdin is taken byte for byte (no decoding), up to
    the end of input; other codecs read their text form from stdin. Without
    VALUE on a terminal, put refuses rather than wait.
    """
    if value is None and sys.stdin.isatty():
        raise UserError("no VALUE: give VALUE or pipe it on stdin (put DB KEY < file)")
    data = sys.stdin.buffer.read() if value is None else None
    with opened(db, write=True, create=True, keys=key_codec, values=value_codec) as store:
        k = key_arg(store, key, encoding, "KEY")
        if data is None:
            assert value is not None
            v = value_arg(store, value, encoding)
        elif store.value_codec.name == "bytes":
            v = data
        else:
            v = value_arg(store, data.decode("utf-8", "surrogateescape").strip(), encoding)
        store[k] = v


@cli.command(short_help="Delete KEY.")
@db_argument
@click.argument("key")
@encoding_options
def delete(db: str, key: str, encoding: str) -> None:
    """Delete KEY from DB; exit 1 if it is missing. KEY is typed as the store's key codec says."""
    with opened(db, write=True) as store:
        k = key_arg(store, key, encoding, "KEY")
        try:
            del store[k]
        except NotFoundError:
            raise UserError(f"key not found: {key_out(store, k, encoding)!r}") from None


@cli.command(short_help="Print records in key order (a range, a prefix).")
@db_argument
@click.option("--start", default=None, help="First key (inclusive).")
@click.option("--stop", default=None, help="End key (exclusive).")
@click.option("--prefix", default=None, help="Only keys starting with this.")
@click.option("--reverse", is_flag=True, help="Descending key order.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N records.")
@click.option("--keys-only", is_flag=True, help="Print keys only.")
@encoding_options
def scan(db: str, start: Optional[str], stop: Optional[str], prefix: Optional[str], reverse: bool,
         limit: Optional[int], keys_only: bool, encoding: str) -> None:
    """Print records of DB in key order, one `KEY<TAB>VALUE` line each (read-only).

    Streams the range leaf by leaf. Use --hex or --base64 when keys or
    values may hold tabs, newlines or non-UTF-8 bytes. Keys, bounds and
    values are typed as the store's codecs say (docs/cli.md); for tuple
    keys, --prefix '["user"]' is every key whose leading elements are "user".
    """
    out = sys.stdout
    with opened(db) as store:
        lo = None if start is None else key_arg(store, start, encoding, "--start")
        hi = None if stop is None else key_arg(store, stop, encoding, "--stop")
        pre = None
        if prefix is not None:
            name = store.key_codec.name
            if name in codecs.KEY_CODECS and name != "bytes":
                plo, phi = jsonshape.prefix_range(name, prefix)  # as the codec means it, not bytewise
                lo = plo if lo is None else max(lo, plo)
                if phi is not None:
                    hi = phi if hi is None else min(hi, phi)
            else:
                pre = decode_arg(prefix, encoding, "--prefix")
        if keys_only:
            rows: Iterator[Any] = ((k, None) for k in store.keys(lo, hi, prefix=pre, reverse=reverse))
        else:
            rows = iter(store.items(lo, hi, prefix=pre, reverse=reverse))
        for i, (k, v) in enumerate(rows):
            if limit is not None and i >= limit:
                break
            line = key_out(store, k, encoding) if v is None else f"{key_out(store, k, encoding)}\t{value_out(store, v, encoding)}"
            out.write(line + "\n")
    out.flush()


class _ClosedStream(io.RawIOBase):
    """_ClosedStream stands for a standard stream the process was started without (``<&-``,
    ``>&-``: Python makes it None): reading or writing it is a UserError naming it, one line and
    exit 1, as coreutils say "write error: Bad file descriptor". Before, ``put`` and ``load``
    without stdin and ``dump`` without stdout ended in a traceback (AttributeError on None,
    click's RuntimeError). Commands that do not use it run as usual. Unbuffered, so that the
    error comes from the command's own write, not from the flush at exit."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def readable(self) -> bool:
        return self.name == "stdin"

    def writable(self) -> bool:
        return self.name != "stdin"

    def readinto(self, buffer: Any) -> int:
        raise UserError(f"{self.name}: closed (Bad file descriptor)")

    def write(self, data: Any) -> int:
        if not len(data):
            return 0
        raise UserError(f"{self.name}: closed (Bad file descriptor)")


class _ClosedText(io.TextIOBase):
    """_ClosedText: the text face of a ``_ClosedStream`` (``buffer`` is the stream itself)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.buffer = _ClosedStream(name)

    def readable(self) -> bool:
        return self.buffer.readable()

    def writable(self) -> bool:
        return self.buffer.writable()

    def read(self, size: Optional[int] = -1) -> str:
        self.buffer.readinto(bytearray(1))
        return ""  # pragma: no cover - readinto raised

    def readline(self, size: Optional[int] = -1) -> str:  # type: ignore[override]  # (typeshed types _IOBase.readline as bytes)
        return self.read()

    def write(self, text: str) -> int:
        self.buffer.write(text.encode())
        return len(text)


def _stand_in_for_closed_streams() -> None:
    """_stand_in_for_closed_streams gives a stdin or stdout that is None a ``_ClosedText``."""
    if sys.stdin is None:
        sys.stdin = _ClosedText("stdin")
    if sys.stdout is None:
        sys.stdout = _ClosedText("stdout")


def main(argv: Optional[List[str]] = None) -> None:
    """main is the console script's entry point (``pagestore``) and ``python -m pagestore``'s."""
    _stand_in_for_closed_streams()
    cli.main(args=argv, prog_name="pagestore")


if __name__ == "__main__":  # pragma: no cover
    main()
