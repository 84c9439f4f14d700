"""``lran-review``: the commands of the review workbench, for operators.

    lran-review region ...                         map (and score) an image region
    lran-review readers add NAME [--admin]         create an account (password read from stdin
                                                   with --password-stdin, else asked for)
    lran-review readers list | disable NAME | enable NAME | password NAME
    lran-review study list
    lran-review study create NAME [--labels IDC|BACH] [--model-set idc] [--open] [--anonymise]
    lran-review study add-images --study NAME PATH  a server folder or zip of images
    lran-review study export --study NAME --to FILE.zip
    lran-review study import FILE.zip [--name NAME]
    lran-review backup --to FILE                   a consistent copy of a SQLite database

Every command takes ``--db URL`` (default: LRAN_REVIEW_DB, else data/reviews.sqlite), prints
one-line errors and exits 2 for input it refuses.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from annotations.records import StudyRecord
from annotations.store import Store, StoreError, default_url, sqlite_path
from lran_core.cliargs import positive_int
from review import identity, modelsets, region, studies, studyio


class CommandError(Exception):
    """Refused input: printed as one line, exit status 2."""


def _store(args: argparse.Namespace) -> Store:
    return Store(args.db)


def _study(store: Store, name: str) -> StudyRecord:
    for study in store.studies():
        if study.name == name:
            return study
    known = ", ".join(s.name for s in store.studies()) or "none"
    raise CommandError(f"no study named {name!r} (studies: {known})")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        raise CommandError("the two passwords differ")
    return first


def readers(args: argparse.Namespace) -> None:
    store = _store(args)
    if args.action == "list":
        for account in store.readers():
            flags = ["admin" if account.role == "admin" else "reader"]
            if account.disabled:
                flags.append("disabled")
            if account.password_hash is None:
                flags.append("single sign-on only")
            print(f"{account.name}\t{', '.join(flags)}")
        return
    name = identity.normalise_name(args.name)
    if args.action == "add":
        password_hash = None if args.no_password else identity.hash_password(_password(args))
        store.add_reader(name, password_hash, "admin" if args.admin else "reader")
        print(f"created {'admin' if args.admin else 'reader'} {name}")
    elif args.action == "password":
        store.update_reader(name, password_hash=identity.hash_password(_password(args)))
        print(f"password of {name} changed")
    elif args.action in ("promote", "demote"):
        role = "admin" if args.action == "promote" else "reader"
        store.update_reader(name, role=role)
        print(f"{name} is now {'an admin' if role == 'admin' else 'a reader'}")
    else:
        store.update_reader(name, disabled=args.action == "disable")
        print(f"{name} {args.action}d")


def study(args: argparse.Namespace) -> None:
    store = _store(args)
    if args.action == "list":
        for found in store.studies():
            cases = len(store.cases(found.study_id))
            print(
                f"{found.name}\t{found.blinding}\t{found.label_set}\t{found.model_set}\t"
                f"{cases} cases"
            )
    elif args.action == "create":
        studies.label_set(args.labels)
        if args.model_set not in modelsets.installed():
            # A study whose models cannot be loaded could not be read.
            known = ", ".join(modelsets.installed()) or "none"
            raise CommandError(f"no model set named {args.model_set!r} (installed: {known})")
        created = store.create_study(
            args.name,
            args.labels,
            "open" if args.open else "blinded",
            args.model_set,
            args.anonymise,
            None,
        )
        print(f"created study {created.name} ({created.blinding})")
    elif args.action == "add-images":
        target = _study(store, args.study)
        images = 0

        def counted() -> Iterator[tuple[str, bytes]]:
            nonlocal images
            for file in studies.files_in(args.path):
                images += 1
                yield file

        side = args.patch_side if args.patch_side is not None else _patch_side(target)
        result = studies.add_images(store, target, counted(), None, side)
        for message in result.refused:
            print(f"refused: {message}", file=sys.stderr)
        # Nothing to add is a mistake to report (a wrong folder, unreadable files); images that
        # are cases already are not: adding a folder again is how new ones are picked up.
        if not images:
            raise CommandError(f"no images found in {args.path}: added no cases to {target.name}")
        if len(result.refused) == images:
            raise CommandError(
                f"every image in {args.path} was refused: added no cases to {target.name}"
            )
        print(f"added {len(result.added)} cases to {target.name}{result.present_text(10)}")
    elif args.action == "export":
        if args.to.exists():
            raise CommandError(f"{args.to} exists: give a new file")
        path = studyio.write_export(store, _study(store, args.study), args.to)
        print(f"wrote {path}")
    elif args.action == "import":
        restored = studyio.import_study(store, args.file.read_bytes(), args.name)
        print(f"imported study {restored.name}: {len(store.cases(restored.study_id))} cases")
        if restored.model_set not in modelsets.installed():
            print(
                f"warning: its model set {restored.model_set!r} is not installed here: its "
                "cases cannot be read until it is",
                file=sys.stderr,
            )


def _patch_side(target: StudyRecord) -> int:
    """The side in px of the study's models' patches: larger images are regions (as in the
    app)."""
    try:
        return modelsets.load(target.model_set).patch_side
    except (modelsets.NoWeightsError, modelsets.CheckpointError) as err:
        raise CommandError(
            f"the models of study {target.name!r} cannot be loaded ({err}): give --patch-side"
        ) from err


def backup(args: argparse.Namespace) -> None:
    """A consistent copy of the SQLite database with SQLite's online backup API (other readers
    and writers may go on); for PostgreSQL the guidance for pg_dump. Refuses a SQLite file that
    does not exist (opening it would create an empty database and back that up)."""
    source_file = sqlite_path(args.db or default_url())
    if source_file is not None and not source_file.is_file():
        raise CommandError(f"no SQLite database at {source_file}: check --db (nothing to back up)")
    store = _store(args)
    if store.engine.dialect.name != "sqlite":
        raise CommandError(
            "this database is not SQLite: back it up with `pg_dump --format=custom "
            "--file FILE DBNAME` and restore with `pg_restore --clean --dbname DBNAME FILE`"
        )
    source_path = store.engine.url.database
    if not source_path:
        raise CommandError("an in-memory database cannot be backed up")
    if args.to.exists():
        raise CommandError(f"{args.to} exists: give a new file")
    if not args.to.parent.is_dir():
        raise CommandError(f"{args.to.parent} is not a folder: give a file in an existing one")
    path = source_path.removeprefix("file:").split("?", 1)[0]
    try:
        with (
            contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as source,
            contextlib.closing(sqlite3.connect(args.to)) as target,
        ):
            source.backup(target)
    except sqlite3.Error as err:
        raise CommandError(f"the backup to {args.to} failed: {err}") from err
    print(f"backed up {path} to {args.to}; images are kept in {store.blobs.describe()}")


def parser() -> argparse.ArgumentParser:
    """The command's options (the region command has its own parser)."""
    p = argparse.ArgumentParser(prog="lran-review", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default=None, help="SQLAlchemy URL of the review store")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("readers", help="reader accounts")
    r.add_argument(
        "action", choices=("add", "list", "disable", "enable", "password", "promote", "demote")
    )
    r.add_argument("name", nargs="?", default="")
    r.add_argument("--admin", action="store_true", help="with add: an admin account")
    r.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    r.add_argument(
        "--no-password",
        action="store_true",
        help="with add: an account that signs in through the trusted proxy only",
    )
    s = sub.add_parser("study", help="reader studies").add_subparsers(dest="action", required=True)
    s.add_parser("list", help="the studies")
    create = s.add_parser("create", help="a new study")
    create.add_argument("name")
    create.add_argument("--labels", default="IDC", choices=sorted(studies.LABEL_SETS))
    create.add_argument("--model-set", default="idc")
    create.add_argument("--open", action="store_true", help="not blinded")
    create.add_argument("--anonymise", action="store_true", help="maps under letters")
    add = s.add_parser("add-images", help="cases from a server folder or zip")
    add.add_argument("--study", required=True)
    add.add_argument("path", type=Path)
    add.add_argument(
        "--patch-side",
        type=positive_int,
        default=None,
        help="images larger than this (px) are regions (default: the study's models' patch)",
    )
    export = s.add_parser("export", help="a study as a zip")
    export.add_argument("--study", required=True)
    export.add_argument("--to", type=Path, required=True)
    restore = s.add_parser("import", help="a study zip into this database")
    restore.add_argument("file", type=Path)
    restore.add_argument("--name", default=None, help="another name for the study")
    b = sub.add_parser("backup", help="copy a SQLite database safely while the app runs")
    b.add_argument("--to", type=Path, required=True)
    # Listed for --help only: main() hands the region command its own arguments (see
    # lran-review region --help).
    sub.add_parser(
        "region",
        help="one region image mapped by a model set and scored against its mask",
        add_help=False,
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a subcommand; gives its exit code (2 for refused input)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    # The region command reads no database: a --db before it, as every other command takes
    # one, is let be.
    if args_list[:1] == ["--db"] and args_list[2:3] == ["region"]:
        args_list = args_list[2:]
    elif args_list[:1] and args_list[0].startswith("--db=") and args_list[1:2] == ["region"]:
        args_list = args_list[1:]
    if args_list[:1] == ["region"]:
        return region.main(args_list[1:])
    args = parser().parse_args(args_list)
    try:
        {"readers": readers, "study": study, "backup": backup}[args.command](args)
    except (CommandError, StoreError, ValueError, KeyError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
