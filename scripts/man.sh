#!/bin/sh
# Writes the man pages of the public API into DIR, from include/crew.h:
#   crew.3         what crew is (the header's first comment), the list of
#                  functions with a line each, the error codes
#   crew_<fn>.3    one page per CREW_API function: its declaration and the
#                  comment above it, with SEE ALSO the functions it names
# Usage: scripts/man.sh DIR [VERSION]
# The build runs it (the crew_man target, cmake/install.cmake), so the
# pages are never older than the header; `make install` installs them
# under share/man/man3.  VERSION defaults to the project's (CMakeLists.txt);
# the date is SOURCE_DATE_EPOCH's if set, else the header's.  Any *.3 file
# already in DIR is removed first, so no page outlives its function.
# scripts/header.awk reads the header, for this and for scripts/api-ref.sh.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
header="$root/include/crew.h"
[ $# -ge 1 ] || { echo "usage: $0 DIR [VERSION]" >&2; exit 2; }
dir=$1
version=${2:-$(sed -n 's/^project(crew VERSION \([0-9.]*\).*/\1/p' \
    "$root/CMakeLists.txt")}
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
else
    date=$(date -u -r "$header" +%Y-%m-%d)
fi

mkdir -p "$dir"
rm -f "$dir"/*.3
parsed="$dir/.header.txt"
awk -f "$root/scripts/header.awk" "$header" >"$parsed"

awk -F '\t' -v dir="$dir" -v version="$version" -v date="$date" '
# roff-escapes plain text: backslashes only (quotes are handled by callers)
function esc(s) {
    gsub(/\\/, "\\e", s)
    return s
}

# A line of comment text in roff: `code` in italics, crew_* and CREW_*
# names in bold, the rest escaped.
function inline(s,    res, tok) {
    res = ""
    while (match(s, /`[^`]*`|crew_[a-z0-9_]+|CREW_[A-Z0-9_]+\*?/)) {
        res = res esc(substr(s, 1, RSTART - 1))
        tok = substr(s, RSTART, RLENGTH)
        if (tok ~ /^`/)
            res = res "\\fI" esc(substr(tok, 2, length(tok) - 2)) "\\fP"
        else
            res = res "\\fB" tok "\\fP"
        s = substr(s, RSTART + RLENGTH)
    }
    return res esc(s)
}

# Prints text as roff lines: one sentence a line (the header puts two
# spaces after a full stop), and no line starting with a control character.
function text(s,    n, piece) {
    sub(/^[ \t]+/, "", s)
    while (match(s, /[.!?][)"]*  +/)) {
        n = RSTART + RLENGTH
        piece = substr(s, 1, RSTART + RLENGTH - 1)
        sub(/ +$/, "", piece)
        textline(piece)
        s = substr(s, n)
    }
    if (s != "")
        textline(s)
}

function textline(s) {
    wrap(inline(s))
}

# Prints a line of roff text, broken at spaces into lines of at most 80
# bytes where it can be, none starting with a control character.
function wrap(s,    i) {
    while (length(s) > 80) {
        for (i = 81; i > 1 && substr(s, i, 1) != " "; i--)
            ;
        if (i == 1)
            break
        guard(substr(s, 1, i - 1))
        s = substr(s, i + 1)
    }
    guard(s)
}

function guard(s) {
    if (s ~ /^[.\047]/)
        s = "\\&" s
    print s > out
}

# Prints comment lines (lines[1..n]) as paragraphs; "- " starts a bullet.
function body(lines, n,    i, l, para, pp) {
    para = pp = 0
    for (i = 1; i <= n; i++) {
        l = lines[i]
        if (l ~ /^[ \t]*$/) {
            pp = para
            para = 0
            continue
        }
        if (l ~ /^[ \t]*- /) {
            sub(/^[ \t]*- /, "", l)
            print ".IP \\(bu 2" > out
        } else if (pp)
            print ".PP" > out
        pp = 0
        text(l)
        para = 1
    }
}

# The first sentence of a comment, cut to about a line, for NAME and the
# function list of crew.3: up to the first full stop, question mark or
# semicolon outside parentheses; if that is longer than 72 characters,
# without its parenthesised asides, then up to its first colon (after a
# leading "Inside a task:", which says where the function may be called),
# then up to the last comma that keeps it short.
function summary(lines, n,    s, i, c, depth, kept, from, cut, pass) {
    s = ""
    for (i = 1; i <= n && lines[i] !~ /^[ \t]*$/; i++)
        s = s (s == "" ? "" : " ") lines[i]
    gsub(/`/, "", s)
    s = s " "
    depth = 0
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "(")
            depth++
        else if (c == ")" && depth > 0)
            depth--
        else if (depth == 0 && c == "?" && substr(s, i + 1, 1) == " ") {
            i++                       # a question keeps its mark
            break
        } else if (depth == 0 && (c == ";" ||
                 (c == "." && substr(s, i + 1, 1) == " ")))
            break
    }
    s = substr(s, 1, i - 1)
    if (length(s) > 72) {             # drop " (...)" asides
        kept = ""
        depth = 0
        for (i = 1; i <= length(s); i++) {
            c = substr(s, i, 1)
            if (c == "(" && (depth > 0 || substr(s, i - 1, 1) == " ")) {
                if (!depth++)
                    sub(/ +$/, "", kept)
            }
            else if (c == ")" && depth > 0)
                depth--
            else if (depth == 0)
                kept = kept c
        }
        s = kept
    }
    from = match(s, /^Inside [^:]*: /) ? RLENGTH + 1 : 1
    for (pass = 1; pass <= 2 && length(s) > 72; pass++) {
        cut = 0                       # pass 1: a colon, pass 2: a comma
        depth = 0
        for (i = from; i <= (pass == 1 ? length(s) : 73); i++) {
            c = substr(s, i, 1)
            if (c == "(")
                depth++
            else if (c == ")" && depth > 0)
                depth--
            else if (depth == 0 && c == (pass == 1 ? ":" : ",")) {
                cut = i
                if (pass == 1)
                    break
            }
        }
        if (cut)
            s = substr(s, 1, cut - 1)
    }
    sub(/ +$/, "", s)
    if (substr(s, 2, 1) ~ /[a-z ]/)
        s = tolower(substr(s, 1, 1)) substr(s, 2)
    return esc(s)
}

# .BI for a line of a declaration: parameter names in italics.
function synopsis(s,    line) {
    line = ".BI \""
    while (match(s, /[ *][A-Za-z_][A-Za-z0-9_]*[,)]/)) {
        line = line substr(s, 1, RSTART) "\" " \
            substr(s, RSTART + 1, RLENGTH - 2) " \""
        s = substr(s, RSTART + RLENGTH - 1)
    }
    print line s "\"" > out
}

function th(title) {
    printf ".TH %s 3 %s \"crew %s\" \"crew manual\"\n", toupper(title),
        date, version > out
}

function includes() {
    print ".nf" > out
    print ".B #include <crew.h>" > out
}

function linking() {
    print ".PP" > out
    print "Link with \\fI\\-lcrew\\fP, or with what" > out
    print "\\fIpkg\\-config \\-\\-cflags \\-\\-libs crew\\fP prints." > out
}

{ t = substr($0, length($1) + 2) }
$1 == "top" { top[++ntop] = t }
$1 == "errors" { eintro[++neintro] = t }
$1 == "error" { ++nerr; ename[nerr] = $2; evalue[nerr] = $3; etext[nerr] = $4 }
$1 == "fn" { name[++nfn] = $2; known[$2] = 1 }
$1 == "proto" { proto[nfn, ++nproto[nfn]] = t }
$1 == "doc" { doc[nfn, ++ndoc[nfn]] = t }

END {
    for (f = 1; f <= nfn; f++) {
        out = dir "/" name[f] ".3"
        n = ndoc[f]
        for (i = 1; i <= n; i++)
            lines[i] = doc[f, i]
        if (n == 0) {
            lines[1] = "Not documented yet; see crew.h."
            n = 1
        }
        brief[f] = summary(lines, n)
        th(name[f])
        print ".SH NAME" > out
        wrap(name[f] " \\- " brief[f])
        print ".SH SYNOPSIS" > out
        includes()
        print ".PP" > out
        for (i = 1; i <= nproto[f]; i++)
            synopsis(proto[f, i])
        print ".fi" > out
        linking()
        print ".SH DESCRIPTION" > out
        body(lines, n)

        # SEE ALSO: crew(3), then the functions of the same family
        # (crew_task_*, crew_group_*, ...) and those the comment names.
        nsee = 0
        split("", seen)
        match(name[f], /^crew_[a-z0-9]+/)
        family = substr(name[f], 1, RLENGTH)
        for (i = 1; i <= nfn; i++)
            if (i != f && (name[i] == family ||
                           index(name[i], family "_") == 1)) {
                seen[name[i]] = 1
                see[++nsee] = name[i]
            }
        for (i = 1; i <= n; i++) {
            s = lines[i]
            while (match(s, /crew_[a-z0-9_]+/)) {
                ref = substr(s, RSTART, RLENGTH)
                s = substr(s, RSTART + RLENGTH)
                if ((ref in known) && ref != name[f] && !(ref in seen)) {
                    seen[ref] = 1
                    see[++nsee] = ref
                }
            }
        }
        for (i = 2; i <= nsee; i++)         # sort them
            for (j = i; j > 1 && see[j - 1] > see[j]; j--) {
                ref = see[j]; see[j] = see[j - 1]; see[j - 1] = ref
            }
        print ".SH SEE ALSO" > out
        printf ".BR crew (3)%s\n", nsee ? "," : "" > out
        for (i = 1; i <= nsee; i++)
            printf ".BR %s (3)%s\n", see[i], i < nsee ? "," : "" > out
        close(out)
    }

    # crew.3: the overview.
    out = dir "/crew.3"
    th("crew")
    print ".SH NAME" > out
    s = top[1]
    sub(/^[^ ]* - /, "", s)
    sub(/\.$/, "", s)
    print "crew \\- " esc(s) > out
    print ".SH SYNOPSIS" > out
    includes()
    print ".fi" > out
    linking()
    print ".SH DESCRIPTION" > out
    n = 0
    for (i = 2; i <= ntop; i++)
        if (n > 0 || top[i] !~ /^[ \t]*$/)
            lines[++n] = top[i]
    body(lines, n)
    print ".PP" > out
    print "Each function has a page of its own, listed below." > out
    print "The types, option structs and callbacks are documented in" > out
    print "\\fIcrew.h\\fP itself, beside their definitions." > out
    print ".SS Functions" > out
    for (f = 1; f <= nfn; f++) {
        print ".TP" > out
        printf ".BR %s (3)\n", name[f] > out
        wrap(brief[f])
    }
    print ".SH ERRORS" > out
    body(eintro, neintro)
    for (e = 1; e <= nerr; e++) {
        v = evalue[e]
        gsub(/-/, "\\-", v)
        if (v !~ /^\(/)
            v = "(" v ")"
        if (etext[e] == "" && v == "0")
            etext[e] = "success"
        print ".TP" > out
        printf ".BR %s \" %s\"\n", ename[e], v > out
        text(etext[e])
    }
    print ".SH SEE ALSO" > out
    print ".BR pthreads (7)" > out
    close(out)
}
' "$parsed"
rm -f "$parsed"
