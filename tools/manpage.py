#!/usr/bin/env python3
"""Writes a binary's manual page (mdoc) from its own description of its options.

    tools/manpage.py BINARY [--output-directory DIR] [--date YYYY-MM-DD] [--authors TEXT]

The source is the binary's `--experimental-dump-help` (swift-argument-parser's JSON of every
command, option, default and value list), so the page says what `--help` says. Written here
rather than taken from swift-argument-parser's `generate-manual`, whose pages did not match the
binaries (issue 41):
  - its synopsis names a `help` subcommand in every page, but only a command with subcommands
    has one (`repeaterd help` is a usage error): here `help` appears only beside real ones;
  - it drops the defaults `--help` shows: here each option says its default and its values,
    unless its help text already says what the default is (`--threads`: one per CPU, which the
    dump gives as the count of the machine that wrote the page);
  - its EXIT STATUS is mdoc's `.Ex -std` ("0 on success, >0 if an error occurs"): here it lists
    what every binary of this project does, 64 (EX_USAGE) for a usage error included, or the
    binary's own list where its help has one (an "Exit status:" block of `  CODE  meaning` lines,
    as runtime-client's).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

EXIT_STATUS = [
    ("0", "success (for muxcat: everything went as asked, Ctrl-C included; for the daemons: "
          "a clean stop on SIGTERM or SIGINT)"),
    ("1", "an error, said in one line on stderr (for the daemons: a failure at start, such as "
          "an address already in use)"),
    ("64", "a usage error (EX_USAGE): an unknown option, a missing or malformed value, a value "
           "out of range; the line names the option and `--help` says more"),
]


def exit_status_list(discussion):
    """A discussion's "Exit status:" block (`  CODE  meaning` lines, continuation lines indented
    further), split off: (the discussion without it, [(code, meaning)]), or (discussion, None)."""
    lines = discussion.split("\n")
    if "Exit status:" not in lines:
        return discussion, None
    start = lines.index("Exit status:")
    entries = []
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        line = lines[end].strip()
        head, _, meaning = line.partition(" ")
        if head.isdigit() and lines[end].startswith("  ") and not lines[end].startswith("    "):
            entries.append([head, meaning.strip()])
        elif entries:
            entries[-1][1] += " " + line
        end += 1
    rest = "\n".join(lines[:start] + lines[end:]).strip()
    return rest, [(code, meaning) for code, meaning in entries]


def escape(text):
    """A line of running text: backslashes escaped, and no line may begin as a request."""
    lines = []
    for line in text.replace("\\", "\\e").split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def quoted(text):
    return '"' + text.replace("\\", "\\e").replace('"', '\\(dq') + '"'


def option_names(argument):
    names = []
    for name in argument.get("names", []):
        names.append(("-" if name["kind"] == "short" else "--") + name["name"])
    return names


def option_head(argument, for_synopsis):
    """`Fl -listen Ar listen`, `Fl h , -help`, or `Ar name` for a positional argument."""
    value = argument.get("valueName") or "value"
    if argument["kind"] == "positional":
        return f"Ar {value}" + (" ..." if argument.get("isRepeating") else "")
    names = option_names(argument)
    if for_synopsis:
        names = names[-1:]  # the long form alone, as --help's usage line
    flags = " , ".join(name[1:] for name in names)
    head = f"Fl {flags}"
    if argument["kind"] == "option":
        head += f" Ar {value}"
    return head


def visible(argument):
    return argument.get("shouldDisplay", True)


def help_text(argument):
    text = argument.get("abstract", "")
    if argument.get("discussion"):
        text += "\n" + argument["discussion"]
    values = argument.get("allValues")
    default = argument.get("defaultValue")
    said = text.lower()
    if values and "one of" not in said:
        text += f" (values: {', '.join(values)})"
    if default not in (None, "") and "default" not in said and argument["kind"] != "flag":
        text += f" (default: {default})"
    return text


def synopsis_lines(command):
    """One mdoc line per argument, `--help` and positional arguments as the usage line has them."""
    lines = []
    for argument in command.get("arguments", []):
        if not visible(argument):
            continue
        head = option_head(argument, for_synopsis=True)
        required = argument["kind"] == "positional" and not argument.get("isOptional")
        lines.append(f".{head}" if required else f".Op {head}")
    return lines


COMMON = (["--version"], ["-h", "--help"])


def option_list(command, skip_common=False):
    out = [".Bl -tag -width 6n"]
    for argument in command.get("arguments", []):
        if not visible(argument) or (skip_common and option_names(argument) in COMMON):
            continue
        out.append(".It " + option_head(argument, for_synopsis=False))
        out.append(escape(help_text(argument)))
    out.append(".El")
    return out


def real_subcommands(command):
    subs = [s for s in command.get("subcommands", []) if s.get("shouldDisplay", True)]
    # argument-parser lists `help` for every command; it works only beside real subcommands.
    if all(s["commandName"] == "help" for s in subs):
        return []
    return subs


def page(dump, date, authors):
    command = dump["command"]
    name = command["commandName"]
    subs = real_subcommands(command)
    out = [
        '.\\" Written by tools/manpage.py from the binary\'s --experimental-dump-help.',
        f".Dd {date.strftime('%B')} {date.day}, {date.year}",
        f".Dt {name.upper()} 1",
        ".Os",
        ".Sh NAME",
        f".Nm {name}",
        f".Nd {quoted(command.get('abstract', ''))}",
        ".Sh SYNOPSIS",
    ]
    if subs:
        # The root command's own options (runtime-client's --cert, --connect, ...) go with any
        # subcommand: OPTIONS lists them.
        root_options = [a for a in command.get("arguments", []) if visible(a) and option_names(a) not in COMMON]
        for sub in subs:
            if sub["commandName"] == "help":
                continue
            out += [".Nm"] + ([".Op Ar options"] if root_options else []) + [f".Cm {sub['commandName']}"]
            out += [line for line in synopsis_lines(sub) if line not in (".Op Fl -help", ".Op Fl -version")]
        out += [".Nm", ".Cm help", ".Op Ar subcommand"]
    else:
        out += [".Nm"] + synopsis_lines(command)
    out.append(".Sh DESCRIPTION")
    discussion, exit_status = exit_status_list(command.get("discussion", ""))
    out.append(escape(discussion or command.get("abstract", "")))
    out.append(".Sh OPTIONS")
    out += option_list(command)
    if subs:
        out.append(".Sh SUBCOMMANDS")
        out.append(".Bl -tag -width 6n")
        for sub in subs:
            out.append(f".It Cm {sub['commandName']}")
            text = sub.get("abstract", "")
            if sub.get("discussion"):
                text += "\n" + sub["discussion"]
            out.append(escape(text))
            arguments = [a for a in sub.get("arguments", []) if visible(a) and option_names(a) not in COMMON]
            if arguments and sub["commandName"] != "help":
                out += option_list(sub, skip_common=True)
        out.append(".El")
    out.append(".Sh \"EXIT STATUS\"")
    out.append(".Bl -tag -width 4n")
    for code, meaning in exit_status or EXIT_STATUS:
        out.append(f".It {code}")
        out.append(escape(meaning))
    out.append(".El")
    out += [".Sh SEE ALSO", escape("The README and docs/ in /usr/share/doc/repeater/ (or the source tree).")]
    if authors:
        out += [".Sh AUTHORS", escape(authors)]
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("binary")
    parser.add_argument("--output-directory", default=".")
    parser.add_argument("--date", help="YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--authors", default="")
    args = parser.parse_args()
    dumped = subprocess.run([args.binary, "--experimental-dump-help"], check=True, capture_output=True, text=True)
    dump = json.loads(dumped.stdout)
    date = datetime.date.fromisoformat(args.date) if args.date else datetime.datetime.now(datetime.timezone.utc).date()
    name = dump["command"]["commandName"]
    path = os.path.join(args.output_directory, f"{name}.1")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page(dump, date, args.authors))
    print(path)


if __name__ == "__main__":
    sys.exit(main())
