# Reads include/crew.h and prints what the documentation generators need
# (scripts/api-ref.sh for docs/api.md, scripts/man.sh for the man pages),
# one item a line, a tag, a tab, then the fields:
#   top    <line>                 the header's first comment, line by line
#   errors <line>                 the comment before the error codes
#   error  <name> <value> <text>  a CREW_OK or CREW_E* define, its comment
#   fn     <name>                 a CREW_API function, in the header's order
#   proto  <line>                 its declaration without "CREW_API ",
#                                 continuation lines re-aligned
#   doc    <line>                 the comment right above it ("" between
#                                 paragraphs), comment markers removed
#   undoc                         it has no such comment
#   version <x.y.z>               from CREW_VERSION_MAJOR/MINOR/PATCH
# Only comments that start in column 0 count.
function flush_comment_line(line, closing) {
    if (line != "" || (comment != "" && !closing))
        comment = comment line "\n"
}

# Prints every line of a comment collected as "line\n..." with a tag.
function print_comment(tag, text,    n, i, lines) {
    n = split(text, lines, "\n")
    for (i = 1; i < n; i++)           # the last piece is after the last \n
        printf "%s\t%s\n", tag, lines[i]
}

/^\/\*/ { comment = ""; in_c = 1 }
in_c {
    line = $0
    sub(/^ *\/?\*+\/? ?/, "", line)
    sub(/ *\*\/ *$/, "", line)
    closing = ($0 ~ /\*\//)
    flush_comment_line(line, closing)
    if (closing) {
        in_c = 0
        last = NR
        if (!seen_top) {
            seen_top = 1
            print_comment("top", comment)
        }
    }
    next
}
/^#define CREW_VERSION_(MAJOR|MINOR|PATCH)[ \t]/ {
    ver[$2] = $3
    comment = ""
    next
}
/^#define CREW_(OK|E[A-Z]+)[ \t]/ {
    if (!nerr++ && last == NR - 1)
        print_comment("errors", comment)
    rest = $0
    sub(/^#define[ \t]+[A-Z_]+[ \t]+/, "", rest)
    value = rest
    sub(/[ \t]*\/\*.*/, "", value)
    text = ""
    if (rest ~ /\/\*/) {
        text = rest
        sub(/^[^\/]*\/\*[ \t]*/, "", text)
        while (text !~ /\*\// && (getline nextline) > 0) {
            sub(/^[ \t]+/, "", nextline)
            text = text " " nextline
        }
        sub(/[ \t]*\*\/.*/, "", text)
    }
    printf "error\t%s\t%s\t%s\n", $2, value, text
    comment = ""
    next
}
/^CREW_API / {
    start = NR
    proto = $0
    while (proto !~ /;/ && (getline nextline) > 0)
        proto = proto "\n" nextline
    sub(/^CREW_API /, "", proto)
    gsub(/\n         /, "\n", proto)   # continuation lines, re-aligned
    name = proto
    sub(/\(.*/, "", name)
    sub(/.*[ *]/, "", name)
    printf "fn\t%s\n", name
    print_comment("proto", proto "\n")
    if (last == start - 1)
        print_comment("doc", comment)
    else
        print "undoc"
    next
}
{ comment = "" }
END {
    if (("CREW_VERSION_MAJOR" in ver) && ("CREW_VERSION_MINOR" in ver) &&
        ("CREW_VERSION_PATCH" in ver))
        printf "version\t%s.%s.%s\n", ver["CREW_VERSION_MAJOR"],
            ver["CREW_VERSION_MINOR"], ver["CREW_VERSION_PATCH"]
}
