"""The corpus of real-program workloads (issue 15): Debian's own programs, each run natively and
under `uintr-emu run` in a fresh directory and compared (tests/corpus/runner.py).

A workload is a shell script run by /bin/sh (dash) or an argv, the input files to create, and
what may differ. The workloads are written to be deterministic rather than filtered: fixed dates
(`touch -d`, `date -d`, git's *_DATE variables, tar --mtime), no PIDs, no current times, no
temporary names in the output. The only allowance is `volatile`: files whose *contents* are
not compared (each names why). `known` marks a documented difference (docs/linux.md, "Real
programs"): the test is then xfail(strict=True), so a fix shows up as a failure until the mark
goes.
"""

# ruff: noqa: E501 -- the workloads embed scripts and programs, whose lines are their own

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Workload:
    name: str
    sh: str | None = None  # a script for /bin/sh -c
    argv: tuple[str, ...] = ()  # or a command
    files: dict[str, str | bytes] = field(default_factory=dict)  # inputs, mtime INPUT_MTIME
    executable: tuple[str, ...] = ()  # inputs made executable
    needs: tuple[str, ...] = ()  # programs that must be installed (on /usr/bin:/bin)
    env: dict[str, str] = field(default_factory=dict)
    volatile: tuple[str, ...] = ()  # globs of files whose contents are not compared
    quick: bool = False  # in the `make test` subset (QUICK)
    cpus: int = 2
    timeout: int = 180  # the emulator's --timeout (s): a hang guard, generous for a busy host
    known: str = ""  # a documented difference: its cause


CORPUS: list[Workload] = []

#: The quick subset `make test` runs (about three minutes on an idle host): some of every kind.
QUICK = frozenset(
    """
    sort-key uniq-count wc factor checksums date-fixed ls-long cp-mv-rm-ln find xargs
    printf-expr-test nproc-uname grep-basic sed-subst awk-sum dash-pipes dash-traps
    dash-background-wait bash-arrays sh-exit-status-signal make-basic python-json
    python-exceptions-exit perl-script perl-processes sqlite3-floats
    tar-create-list tar-gzip pigz-roundtrip busybox-sort-uniq busybox-seq-expr-printf
    busybox-checksums busybox-awk busybox-sh-script busybox-sh-background busybox-env-printenv
    """.split()
)


def w(name: str, sh: str | None = None, **kw) -> None:
    argv = kw.pop("argv", ())
    needs = kw.pop("needs", ())
    if argv and not needs:
        needs = (argv[0],)
    CORPUS.append(Workload(name, sh, tuple(argv), needs=tuple(needs), quick=name in QUICK, **kw))


def bb(name: str, script: str, **kw) -> None:
    """A busybox ash script; busybox runs its applets itself (a standalone shell)."""
    w(f"busybox-{name}", argv=("busybox", "sh", "-c", script), **kw)


# Shared inputs ------------------------------------------------------------------------------

WORDS = (
    "\n".join(
        "pear apple fig banana cherry apple date fig elderberry grape apple kiwi lemon".split()
        + ["Zebra", "zebra", "alpha", "Alpha", "10", "9", "100", "-3", "2.5"]
    )
    + "\n"
)
TABLE = (
    "id,name,dept,salary\n"
    "1,ann,eng,120.5\n2,bob,ops,80\n3,cid,eng,99.25\n4,dee,sales,70\n"
    "5,eve,ops,85.75\n6,fay,eng,130\n7,gus,sales,66.6\n"
)
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n"
    "alice:x:1000:1000:Alice A,,,:/home/alice:/bin/bash\n"
    "bob:x:1001:1001::/home/bob:/bin/sh\n"
)
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\n"
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud\n"
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.\n"
    "\n"
    "Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu\n"
    "fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in\n"
    "culpa qui officia deserunt mollit anim id est laborum.\n"
)
# About 40 KB of varied, compressible text, the same everywhere.
BIG = "".join(
    f"{i:05d} {LOREM.split()[i % 69]} {i * 7919 % 10007} {'xyz'[i % 3] * (i % 17)}\n"
    for i in range(2000)
)
BIN = bytes((i * 131 + (i >> 7) * 17) & 0xFF for i in range(6000))

# coreutils ----------------------------------------------------------------------------------

w("sort-basic", "sort words; echo --; sort -r words", files={"words": WORDS})
w("sort-numeric", "sort -n words | tail -6; sort -g words | head -3", files={"words": WORDS})
w("sort-unique-fold", "sort -uf words", files={"words": WORDS})
w("sort-key", "sort -t, -k3,3 -k4,4nr table", files={"table": TABLE})
w("sort-big", "sort -k3n -k1 big | md5sum; sort -u -k2,2 big | wc -l", files={"big": BIG})
w("uniq-count", "sort words | uniq -c | sort -k1,1nr -k2", files={"words": WORDS})
w("uniq-dup", "sort words | uniq -d; sort words | uniq -u | wc -l", files={"words": WORDS})
w(
    "wc",
    "wc lorem; wc -l < lorem; wc -c big words",
    files={"lorem": LOREM, "big": BIG, "words": WORDS},
)
w(
    "tr",
    "tr a-z A-Z < lorem | head -2; tr -d aeiou < lorem | tail -1; echo aaabbb | tr -s ab",
    files={"lorem": LOREM},
)
w("cut", "cut -d: -f1,7 passwd; cut -c1-5 passwd | head -2", files={"passwd": PASSWD})
w(
    "head-tail",
    "head -n3 big; tail -n2 big; tail -c 20 big; head -c 10 big | od -c",
    files={"big": BIG},
)
w("tail-from", "tail -n +1995 big; head -n -1997 big | tail -n1", files={"big": BIG})
w("seq", "seq 5; seq 2 3 20; seq -w 8 11; seq -f '%.2f' 0 0.25 1; seq -s, 10")
w("factor", "factor 1 2 97 1234567 600851475143 18446744073709551557 4294967297")
w(
    "checksums",
    "md5sum big; sha1sum big; sha256sum big; sha512sum bin; b2sum words; cksum big",
    files={"big": BIG, "bin": BIN, "words": WORDS},
)
w(
    "sha256sum-check",
    "sha256sum big words > sums; sha256sum -c sums; echo x >> words; "
    "sha256sum -c sums; echo status $?",
    files={"big": BIG, "words": WORDS},
)
w(
    "base64",
    "base64 bin | head -3; base64 bin | base64 -d | cmp - bin && echo same; "
    "base32 words | head -2",
    files={"bin": BIN, "words": WORDS},
)
w(
    "od",
    "od -A x -t x1z -N 64 bin; od -c -N 16 lorem; od -t d4 -N 16 bin",
    files={"bin": BIN, "lorem": LOREM},
)
w(
    "split",
    "split -l 700 big part-; wc -l part-*; split -b 2500 -d bin b.; ls",
    files={"big": BIG, "bin": BIN},
)
w(
    "join",
    "sort -t, -k1,1 a > a.s; sort -t, -k1,1 b > b.s; join -t, a.s b.s; join -t, -v1 a.s b.s",
    files={"a": "1,one\n2,two\n3,three\n5,five\n", "b": "1,uno\n3,tres\n4,cuatro\n5,cinco\n"},
)
w(
    "paste",
    "paste -d, a b; paste -s -d+ a | bc; paste - - < b",
    files={"a": "1\n2\n3\n4\n", "b": "x\ny\nz\nw\n"},
    needs=("bc",),
)
w(
    "date-fixed",
    "date -u -d '2021-03-04 05:06:07' '+%F %T %A %j %U %s'; date -u -d @0; "
    "date -d '2020-02-28 + 1 day' +%F; date -u -d '2024-12-31T23:59:59Z' -R; "
    "TZ=America/New_York date -d '2021-07-01 12:00 UTC' '+%H:%M %Z'",
)
w(
    "stat-files",
    "touch -d '2019-05-06 07:08:09' a; mkdir d; chmod 750 d; chmod 640 a; "
    "ln -s a l; stat -c '%n %s %a %A %F' a d l big; stat -c '%n %y' a big; stat -L -c '%n %F' l",
    files={"big": BIG},
)
w(
    "ls-long",
    "touch -d '2018-01-02 03:04:05' big words; mkdir sub; touch -d '2018-06-01' sub; "
    "chmod 700 sub; ls -l --time-style=long-iso big words sub; ls -1 -S; ls -rt",
    files={"big": BIG, "words": WORDS},
)
w(
    "ls-full-time",
    "touch -d '2000-01-01 12:00:00.123456789' f; ls -l --full-time f | cut -d' ' -f5-",
    files={"f": "x"},
)
w(
    "cp-mv-rm-ln",
    "mkdir -p a/b/c; cp words a/b/c/w; cp -r a x; mv x/b x/bb; ln -s bb/c x/lnk; "
    "ln words hard; rm a/b/c/w; rmdir a/b/c; find . | sort; cat x/lnk/w | wc -l",
    files={"words": WORDS},
)
w(
    "cp-preserve",
    "touch -d '2010-10-10 10:10' f; chmod 604 f; cp -p f g; cp f h; stat -c '%n %a %y' f g",
    files={"f": "data\n"},
)
w(
    "mkdir-p",
    "mkdir -p one/two/three; mkdir -m 711 -p one/m; mkdir one 2>&1; echo $?; "
    "rmdir -p one/two/three; ls -d one/*",
)
w(
    "find",
    "mkdir -p t/a/b t/c; touch -d 2001-01-01 t/a/x.c t/a/b/y.c; "
    "touch -d 2002-02-02 t/c/z.h t/top.c; "
    "find t -name '*.c' | sort; find t -type d | sort; find t -path '*b*' -print | sort; "
    "find t -newer t/a/x.c -o -name z.h | sort | wc -l",
)
w(
    "find-printf",
    "mkdir -p d/e; printf abc > d/f; printf abcdef > d/e/g; "
    "find d -type f -printf '%p %s %d\\n' | sort; find d -maxdepth 1 -type d",
)
w(
    "xargs",
    "seq 10 | xargs -n 3 echo; printf 'a b\\0c\\0' | xargs -0 -I{} echo [{}]; "
    "seq 5 | xargs sh -c 'echo $#' x",
)
w(
    "expand-fold-fmt",
    "printf 'a\\tb\\tc\\n' | expand -t 4; fold -w 30 lorem | head -4; fmt -w 50 lorem | head -3",
    files={"lorem": LOREM},
)
w(
    "nl-tac-rev",
    "nl -ba lorem | head -3; tac words | head -3; echo hello | rev",
    files={"lorem": LOREM, "words": WORDS},
    needs=("rev",),
)
w(
    "comm-diff",
    "sort a > as; sort b > bs; comm as bs; comm -12 as bs; diff as bs; echo $?",
    files={"a": "x\ny\nz\nw\n", "b": "y\nq\nw\n"},
)
w(
    "diff-unified",
    "diff -u old new | tail -n +3; diff -q old new; cmp old new; echo $?",
    files={"old": LOREM, "new": LOREM.replace("dolor", "DOLOR")},
)
w("csplit", "csplit -s -f sec big 500 '/^01500/'; wc -l sec*", files={"big": BIG})
w(
    "printf-expr-test",
    "printf '%5.2f|%-4s|%x|%o|%e\\n' 3.14159 ab 255 8 12345.678; "
    "expr 7 \\* 6; expr length hello; expr 10 / 3; test 3 -lt 4 && echo lt; "
    "[ -d . ] && echo dir; expr 1 = 2; echo $?",
)
w(
    "numfmt-tsort",
    "numfmt --to=iec 1024 123456789; numfmt --from=si 1K 2M; "
    "printf 'a b\\nb c\\na c\\n' | tsort",
)
w(
    "basename-realpath",
    "mkdir -p p/q; basename /x/y.tar.gz .gz; dirname /x/y/z; "
    'realpath --relative-to=. p/q; readlink -f p/../p/q | sed "s|$PWD|PWD|"; basename "$(pwd -P)"',
)
w(
    "tee-dd",
    "seq 1000 | tee copy | tail -1; dd if=bin of=out bs=512 count=3 skip=1 status=none; "
    "wc -c out; dd if=copy bs=1 skip=5 count=10 status=none",
    files={"bin": BIN},
)
w(
    "truncate-du",
    "truncate -s 10000 f; wc -c f; truncate -s -1000 f; stat -c %s f; du -b f big; du -sb .",
    files={"big": BIG},
)
w(
    "shuf-random-source",
    "shuf --random-source=big -n 5 words; shuf -i 1-10 --random-source=big",
    files={"big": BIG, "words": WORDS},
)
w(
    "cat-options",
    "cat -A ctl; cat -n -s lorem | tail -4; cat -b lorem | head -2",
    files={"ctl": "a\tb\x01c \n\r\n\n\nend", "lorem": LOREM},
)
w(
    "pr-ptx",
    "pr -t -2 -w 60 words | head -5; ptx -w 40 lorem | head -3",
    files={"words": WORDS, "lorem": LOREM},
)
w(
    "true-false-yes",
    "true; echo $?; false; echo $?; yes abc | head -3; "
    "yes | head -c 1000 | wc -c; env -i A=1 env",
)
w(
    "install-chmod",
    "install -m 640 src dst; install -d -m 755 dir/sub; chmod u+x,g-r src; "
    "chmod -R go-rwx dir; stat -c '%n %a' src dst dir dir/sub",
    files={"src": "content\n"},
)
w(
    "timeout-sleep",
    "timeout 5 sleep 0.1; echo $?; timeout 0.2 sleep 3; echo $?; sleep 0.05; echo done",
    known="timer_create is not emulated (ENOSYS, a listed gap): timeout falls back to alarm() "
    "and works, but the emulator's warning about the call is on stderr",
)
w("nproc-uname", "nproc; uname -s; uname -m; uname -o")
w(
    "sum-cksum-algos",
    "sum big; sum -s big; cksum -a crc big 2>/dev/null || cksum big; md5sum - < words",
    files={"big": BIG, "words": WORDS},
)
w(
    "touch-ref",
    "touch -d '2001-02-03 04:05:06' a; touch -r a b; touch -m -d '@1000000000' c; "
    "stat -c '%n %Y' a b c; [ c -nt a ] && echo newer",
    files={"a": "", "b": ""},
)
w(
    "mktemp-names",
    'd=$(mktemp -d -p .); f=$(mktemp -p "$d" x.XXXXXX); echo $f | wc -c; '
    'ls $d | wc -l; rm -r "$d"',
)
w(
    "printenv-id",
    "printenv HOME | grep -c home; printenv LANG TZ; id -u; id -gn; whoami; "
    "logname 2>&1 | wc -l",
)
w(
    "sort-large-parallel",
    "sort --parallel=2 -S 1M big | sha256sum; sort -R --random-source=big words | head -3",
    files={"big": BIG * 4, "words": WORDS},
)

# grep, sed, awk -----------------------------------------------------------------------------

w(
    "grep-basic",
    "grep -n dolor lorem; grep -c ut lorem; grep -v -i ut lorem | wc -l; "
    "grep -o '[a-z]*ll[a-z]*' lorem",
    files={"lorem": LOREM},
)
w(
    "grep-extended",
    "grep -E '^(root|bob):' passwd; grep -w sys passwd; grep -F -x 'x' passwd; "
    "echo $?; grep -e nologin -e bash -c passwd",
    files={"passwd": PASSWD},
)
w(
    "grep-recursive",
    "mkdir -p s/t; echo needle > s/a; echo hay > s/t/b; echo needle2 > s/t/c; "
    "grep -r needle s | sort; grep -rl needle s | sort; grep -L needle -r s",
)
w("grep-context", "grep -A1 -B1 -n 01000 big; grep -m2 -b 'sed' big", files={"big": BIG})
w(
    "grep-pcre",
    "grep -P '\\d{3}\\s' big | head -3; grep -oP '(?<=0)\\d(?=9)' big | sort | uniq -c",
    files={"big": BIG},
)
w(
    "sed-subst",
    "sed 's/dolor/DOLOR/g; s/^/> /' lorem; sed -n '2,3p' lorem; sed '/^$/d' lorem | wc -l",
    files={"lorem": LOREM},
)
w(
    "sed-inplace",
    "sed -i.bak 's/:x:/:*:/' passwd; sed -i -e '1d' -e '$a end' passwd; cat passwd",
    files={"passwd": PASSWD},
)
w(
    "sed-script",
    "sed -f prog lorem",
    files={
        "lorem": LOREM,
        "prog": ("y/abc/ABC/\n/^Duis/,/^culpa/{\n  s/ /_/g\n}\n$!N\ns/\\n/ + /\nP\nD\n"),
    },
)
w(
    "sed-regex",
    "sed -E 's/([0-9]+) ([a-z]+)/\\2=\\1/' big | head -3; "
    "sed -n '/^0001[0-9]/{p;q}' big; sed 's/[aeiou]/&&/3' lorem | head -1",
    files={"big": BIG, "lorem": LOREM},
)
w(
    "awk-sum",
    'awk -F, \'NR>1{s[$3]+=$4; n[$3]++} END{for (d in s) printf "%s %.3f %d\\n", d, '
    "s[d], n[d]}' table | sort",
    files={"table": TABLE},
)
w(
    "awk-fields",
    "awk -F: '$3 >= 1000 {print $1, $6} {n++} END {print n, NR}' passwd; "
    "awk '{ $2 = toupper($2); print }' OFS=- big | head -2",
    files={"passwd": PASSWD, "big": BIG},
)
w(
    "awk-math",
    'awk \'BEGIN{printf "%.6f %.6f %.6f %d\\n", sin(1), exp(1), sqrt(2), '
    'int(-3.7); x=0.1+0.2; print x, x==0.3, 2^53+1, 1e300*1e10, -0 ""}\'',
)
w(
    "awk-strings",
    'awk \'{ n=split($0, a, " "); print n, substr($0, 3, 5), index($0, "dolor"),'
    ' length() }\' lorem; awk \'BEGIN{s="a-b-c"; gsub(/-/,"+",s); print s; '
    'print sprintf("%05.1f|%-3s|%c", 3.14159, "x", 65)}\'',
    files={"lorem": LOREM},
)
w(
    "awk-program-file",
    "awk -f prog.awk big",
    files={
        "big": BIG,
        "prog.awk": (
            "{ w[$2]++; t += $3 }\nEND { for (k in w) if (w[k] > 40) c++; "
            'printf "%d words, total %d, mean %.4f\\n", c, t, t / NR }\n'
        ),
    },
)

# shells -------------------------------------------------------------------------------------

SCRIPT_PIPES = """
set -e
seq 20 | grep 1 | tr '\\n' ' '; echo
x=$(echo outer $(echo inner $(printf nested)))
echo "$x"
n=0; for i in $(seq 5); do n=$((n + i * i)); done; echo "sum $n"
( cd /; pwd ); basename "$(pwd)"
{ echo a; echo b; } | wc -l
echo "${HOME:+home set}" "${UNSET:-default}" "${#x}"
"""
SCRIPT_FUNCS = """
f() { echo "f($#): $*"; return 3; }
f one "two three"; echo "status $?"
fib() { if [ $1 -lt 2 ]; then echo $1; else echo $(( $(fib $(($1-1))) + $(fib $(($1-2))) )); fi; }
fib 6
case "abc.tar.gz" in *.gz) echo gz;; *) echo other;; esac
set -- a b c; shift; echo "$@" $#
while read -r a b; do echo "[$b|$a]"; done <<EOF
1 one
2 two words
EOF
cat <<'EOF'
literal $HOME `x`
EOF
i=0; until [ $i -ge 3 ]; do i=$((i+1)); done; echo $i
"""
SCRIPT_TRAPS = """
trap 'echo exiting $?' EXIT
trap 'echo got USR1' USR1
kill -USR1 $$
echo after
( trap 'echo sub TERM; exit 7' TERM; kill -TERM $(sh -c 'echo $PPID'); sleep 1 ) ; echo "sub $?"
(exit 4); echo "exit $?"
false || echo "or"
"""
SCRIPT_WAIT = """
(sleep 0.2; echo slow) > a &
p1=$!
(echo fast) > b &
p2=$!
wait $p2; echo "b done $?"
wait $p1; echo "a done $?"
cat a b
(exit 5) & wait $!; echo "status $?"
for i in 1 2 3; do (echo job $i > job$i) & done; wait
cat job1 job2 job3
{ sh -c 'kill -9 $$'; } 2>/dev/null; echo "killed $?"
"""

w("dash-pipes", SCRIPT_PIPES)
w("dash-functions-heredoc", SCRIPT_FUNCS)
w("dash-traps", SCRIPT_TRAPS)
w("dash-background-wait", SCRIPT_WAIT)
w("bash-pipes", argv=("bash", "-c", SCRIPT_PIPES))
w("bash-functions-heredoc", argv=("bash", "-c", SCRIPT_FUNCS))
w("bash-traps", argv=("bash", "-c", SCRIPT_TRAPS))
w("bash-background-wait", argv=("bash", "-c", SCRIPT_WAIT))
w(
    "bash-arrays",
    argv=(
        "bash",
        "-c",
        """
a=(one two "three four"); a+=(five); echo ${#a[@]} "${a[2]}" "${a[@]:1:2}"
declare -A m=([x]=1 [y]=2); m[z]=3; for k in $(printf '%s\\n' "${!m[@]}" | sort); do echo $k=${m[$k]}; done
s="Hello, World"; echo "${s,,}" "${s^^}" "${s/World/There}" "${s:7}" "${s#*, }"
printf -v v '%05d' 42; echo $v
echo $(( 2**40 )) $(( 17 % 5 )) $(( -7 / 2 )) $(( 1 << 10 ))
[[ abc == a* ]] && echo match; [[ abc =~ ^a(.)c$ ]] && echo "${BASH_REMATCH[1]}"
mapfile -t lines < <(printf 'l1\\nl2\\n'); echo "${lines[1]}"
""",
    ),
    needs=("bash",),
)
w(
    "bash-procsub-coproc",
    argv=(
        "bash",
        "-c",
        """
diff <(seq 3) <(seq 4); echo "diff $?"
while read l; do echo "got $l"; done < <(printf 'a\\nb\\n')
set -o pipefail; false | true; echo "pipefail $?"
shopt -s extglob; f=abc123; echo ${f//+([0-9])/N}
echo {a,b}{1,2} {1..5} {01..3}
""",
    ),
    needs=("bash",),
)
w(
    "bash-script-file",
    argv=("bash", "script.sh", "x", "y z"),
    files={
        "script.sh": """
#!/bin/bash
set -eu
echo "$0 $# $1 $2"
count() { local n=0; for _ in "$@"; do n=$((n+1)); done; echo $n; }
count "$@" a b
readarray -t w < words; echo "${#w[@]} ${w[0]}"
exec 3> out; echo to-fd3 >&3; exec 3>&-; cat out
trap 'echo ERR at $LINENO' ERR
false || true
echo $(( RANDOM >= 0 ))
""",
        "words": WORDS,
    },
)
w(
    "bash-select-builtins",
    argv=(
        "bash",
        "-c",
        """
type cd echo ls | sed 's| is /.*| is a file|'; command -v sed; hash -r; enable -n echo
echo still; help -d cd; umask; printf '%q\\n' "a b'c"
read -r -d '' x <<< "multi word" || true; echo "$x"
echo ${BASH_VERSINFO[0]} >/dev/null; getopts ab: o -b val; echo $o $OPTARG
""",
    ),
    needs=("bash",),
)
w(
    "sh-script-file",
    argv=("sh", "run.sh"),
    files={
        "run.sh": """
for f in *.txt; do echo "$f: $(wc -l < "$f")"; done
IFS=: read -r user x uid rest < passwd; echo "$user $uid"
exec 4< passwd; read -r first <&4; echo "${first%%:*}"; exec 4<&-
echo $(( $(grep -c : passwd) * 2 ))
""",
        "a.txt": "1\n2\n",
        "b.txt": "x\n",
        "passwd": PASSWD,
    },
    needs=("sh",),
)
w(
    "sh-exit-status-signal",
    "sh -c 'exit 42'; echo $?; sh -c 'kill -TERM $$'; echo $?; sh -c 'kill -INT $$'; echo $?",
)
w(
    "sh-redirections",
    "echo out > f; echo err 1>&2 2>>f; echo more >> f; cat < f; "
    "ls nonexistent 2> e; echo $?; cat e | sed 's/.*: //'; exec 2>&1; echo x >&2",
)
w(
    "sh-ifs-globs",
    "touch b.c a.c c.h; for f in *.c; do echo $f; done; set -f; echo *.c; set +f; "
    "IFS=,; set -- $(echo 'a,b,,c'); echo $#; unset IFS; echo [*.none]",
)
w("sh-eval-exec", "x='echo evaluated'; eval \"$x\"; exec sh -c 'echo replaced; exit 3'")
w(
    "sh-getopts-read",
    "set -- -a -b arg rest; while getopts ab: o; do echo $o ${OPTARG:-}; "
    "done; shift $((OPTIND-1)); echo $*; printf 'x y z\\n' | { read a b; echo $b; }",
)

# make ---------------------------------------------------------------------------------------

MAKEFILE = """\
OBJS = a.out1 b.out1 c.out1 d.out1
all: total
%.out1: %.in
\tsort -n $< > $@
total: $(OBJS)
\tcat $^ | awk '{s+=$$1} END {print s}' > $@
\t@echo built $@ from $(words $^) parts
clean:
\trm -f $(OBJS) total
.PHONY: all clean
"""
MAKE_INPUTS = {
    "Makefile": MAKEFILE,
    **{f"{c}.in": f"{i}\n{i * 10}\n{i * 3}\n" for i, c in enumerate("abcd", 1)},
}
w("make-basic", argv=("make",), files=MAKE_INPUTS)
w("make-parallel", argv=("make", "-j2", "-s"), files=MAKE_INPUTS)
w(
    "make-dry-run-clean",
    "make -n; make -s; make -q total; echo uptodate $?; make clean",
    files=MAKE_INPUTS,
    needs=("make",),
    known="files get the host's times, the guest reads the virtual clock (2026-01-01): the "
    "second make finds the target the first one built in the future and warns of clock skew",
)
w(
    "make-failure",
    argv=("make", "-k"),
    files={
        "Makefile": ("all: ok bad after\nok:\n\t@echo ok\nbad:\n\t@exit 3\nafter:\n\t@echo after\n")
    },
)
w(
    "make-recursive-vars",
    "make -C sub X=1 --no-print-directory; make -f other.mk V=$$",
    files={
        "sub/Makefile": "Y := $(shell echo shell)\nall:\n\t@echo X=$(X) Y=$(Y) "
        "$(patsubst %.c,%.o,a.c b.c) $(wildcard *.mk)\n",
        "other.mk": "all:\n\t@echo V is $(if $(V),set,unset) $(MAKELEVEL)\n",
    },
    needs=("make",),
)

# gcc ----------------------------------------------------------------------------------------

HELLO_C = """\
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(int argc, char **argv) {
    int v[] = {5, 3, 9, 1, 7};
    qsort(v, 5, sizeof v[0], cmp);
    for (int i = 0; i < 5; i++) printf("%d ", v[i]);
    printf("\\n%.10f %g %s\\n", sqrt(2.0), 1e-5 / 3, argc > 1 ? argv[1] : "-");
    return 0;
}
"""
PRIMES_C = """\
#include <stdio.h>
#include <string.h>
static char sieve[100000];
int main(void) {
    long sum = 0; int n = 0;
    memset(sieve, 1, sizeof sieve);
    for (int i = 2; i < 100000; i++)
        if (sieve[i]) { n++; sum += i; for (long j = (long)i * i; j < 100000; j += i) sieve[j] = 0; }
    printf("%d primes, sum %ld\\n", n, sum);
    return 0;
}
"""
w(
    "gcc-compile-run",
    "gcc -O2 -o hello hello.c -lm && ./hello arg; echo $?",
    files={"hello.c": HELLO_C},
    needs=("gcc",),
    timeout=300,
    volatile=("hello",),
)
w(
    "gcc-static-run",
    "gcc -O1 -static -o primes primes.c && ./primes && strip primes && ./primes",
    files={"primes.c": PRIMES_C},
    needs=("gcc",),
    timeout=300,
    volatile=("primes",),
)
w(
    "gcc-preprocess",
    "gcc -E -P -DN=3 m.c; gcc -fsyntax-only -Wall bad.c 2>&1 | grep -c warning",
    files={
        "m.c": "#define SQ(x) ((x)*(x))\nint a = SQ(N);\n#if N > 2\nbig\n" "#endif\n",
        "bad.c": "int f(void) { int x; return 0; }\n",
    },
    needs=("gcc",),
)
w(
    "gcc-objects-ar",
    "gcc -c -O2 a.c b.c && ar rcs libab.a a.o b.o && ar t libab.a && "
    "gcc -o prog main.c libab.a && ./prog",
    files={
        "a.c": "int add(int a, int b) { return a + b; }\n",
        "b.c": "int mul(int a, int b) { return a * b; }\n",
        "main.c": "#include <stdio.h>\nint add(int,int); int mul(int,int);\n"
        'int main(void) { printf("%d\\n", add(2, mul(3, 4))); return 0; }\n',
    },
    needs=("gcc",),
    timeout=300,
    volatile=("*.o", "*.a", "prog"),
)

# python3 ------------------------------------------------------------------------------------


def py(name: str, code: str, **kw) -> None:
    w(f"python-{name}", argv=("python3", "-c", code), **kw)


py(
    "json",
    """
import json
d = {"b": [1, 2.5, None, True], "a": {"x": "\\u00e9"}, "c": 1e100}
s = json.dumps(d, sort_keys=True); print(s)
print(json.loads(s) == d, json.dumps(d, indent=1, ensure_ascii=False).count("\\n"))
print(json.dumps([0.1 + 0.2, 1/3, 2**70, float("1e-7")]))
""",
)
py(
    "re",
    """
import re
t = "2021-03-04 and 1999-12-31, not 12-1-1"
print(re.findall(r"(\\d{4})-(\\d\\d)-(\\d\\d)", t))
print(re.sub(r"(?P<y>\\d{4})-(\\d\\d)", lambda m: m["y"][::-1], t))
print(re.split(r"[, ]+", t), bool(re.fullmatch(r"[a-z]+", "abc")))
""",
)
py(
    "hashlib-zlib",
    """
import hashlib, zlib, base64
data = bytes(range(256)) * 300
for n in ("md5", "sha1", "sha256", "sha3_256", "blake2b"):
    print(n, hashlib.new(n, data).hexdigest()[:32])
c = zlib.compress(data, 9); print(len(c), zlib.crc32(data), zlib.decompress(c) == data)
print(base64.b85encode(data[:20]).decode())
""",
)
py(
    "subprocess",
    """
import subprocess, sys
r = subprocess.run(["sort", "-r"], input=b"a\\nc\\nb\\n", capture_output=True)
print(r.returncode, r.stdout)
print(subprocess.run("exit 3", shell=True).returncode)
print(subprocess.check_output(["sh", "-c", "echo $0 $1", "x", "y"]).decode().strip())
p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(p.communicate(b"through cat")[0], p.wait())
r = subprocess.run([sys.executable, "-c", "import sys; sys.exit(5)"]); print(r.returncode)
""",
    timeout=300,
)
py(
    "threading",
    """
import threading, queue
q = queue.Queue(); lock = threading.Lock(); total = [0]
def work(i):
    for j in range(2000):
        with lock:
            total[0] += j % (i + 2)
    q.put(i)
ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(sorted(q.get() for _ in range(4)), total[0])
ev = threading.Event(); threading.Timer(0.05, ev.set).start(); print(ev.wait(5))
""",
)
py(
    "os-popen",
    """
import os
with os.popen("seq 3; echo done") as f: print(repr(f.read()))
print(os.popen("exit 2").close())
r, w = os.pipe(); pid = os.fork()
if pid == 0:
    os.close(r); os.write(w, b"from child"); os._exit(9)
os.close(w); print(os.read(r, 100)); _, st = os.waitpid(pid, 0)
print(os.WEXITSTATUS(st), os.getcwd().endswith("work"))
""",
)
py(
    "multiprocessing",
    """
import multiprocessing as mp
def sq(x): return x * x
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        print(pool.map(sq, range(10)))
        print(sum(pool.imap_unordered(sq, range(100))))
""",
    timeout=300,
)
w(
    "python-multiprocessing-script",
    argv=("python3", "mp.py"),
    files={
        "mp.py": """
import multiprocessing as mp
def worker(q, n):
    q.put((n, sum(range(n))))
if __name__ == "__main__":
    q = mp.Queue()
    ps = [mp.Process(target=worker, args=(q, n)) for n in (1000, 2000)]
    for p in ps: p.start()
    res = sorted(q.get() for _ in ps)
    for p in ps: p.join()
    print(res, [p.exitcode for p in ps])
    with mp.Pool(2) as pool:
        print(pool.map(abs, [-1, -2, 3]))
"""
    },
    timeout=300,
)
py(
    "decimal-fractions-math",
    """
from decimal import Decimal, getcontext
from fractions import Fraction
import math, statistics
getcontext().prec = 40
print(Decimal(2).sqrt(), Decimal("1.1") + Decimal("2.2"))
print(Fraction(3, 4) + Fraction(5, 6), math.factorial(30), math.pi, math.e ** 0.5)
print(statistics.mean([1, 2, 3.5]), statistics.stdev([1, 2, 3, 4]), 0.1 + 0.2, 1e16 + 1.0)
print(round(2.675, 2), float.hex(1 / 3), math.fsum([0.1] * 10), 7.0 // 2, -7 % 3)
""",
)
py(
    "struct-itertools-collections",
    """
import struct, itertools, collections, heapq, bisect
print(struct.pack("<iqd", -1, 2**40, 1.5).hex(), struct.unpack(">HI", b"\\x01\\x02\\x03\\x04\\x05\\x06"))
print(list(itertools.permutations("abc", 2))[:4], list(itertools.accumulate(range(6))))
c = collections.Counter("mississippi"); print(c.most_common(3))
print(heapq.nsmallest(3, [5, 1, 8, 3, 9]), bisect.bisect([1, 3, 5], 4))
od = collections.OrderedDict.fromkeys("cab"); od.move_to_end("c"); print(list(od))
""",
)
w(
    "python-files-csv",
    argv=("python3", "prog.py"),
    files={
        "table": TABLE,
        "prog.py": """
import csv, os, shutil, pathlib
rows = list(csv.DictReader(open("table")))
print(len(rows), max(rows, key=lambda r: float(r["salary"]))["name"])
with open("out.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["dept", "n"])
    for d in sorted({r["dept"] for r in rows}): w.writerow([d, sum(r["dept"] == d for r in rows)])
p = pathlib.Path("tree/a/b"); p.mkdir(parents=True); (p / "f.txt").write_text("x")
shutil.copytree("tree", "tree2"); shutil.rmtree("tree")
print(sorted(str(q) for q in pathlib.Path(".").rglob("*")))
os.rename("out.csv", "depts.csv"); print(open("depts.csv").read())
""",
    },
)
py(
    "sqlite3-module",
    """
import sqlite3
c = sqlite3.connect("db.sqlite")
c.execute("create table t (k text, v real)")
c.executemany("insert into t values (?, ?)", [("a", 1.5), ("b", 2.25), ("a", 0.1)])
c.commit()
print(c.execute("select k, sum(v), avg(v) from t group by k").fetchall())
print(c.execute("select 1.0/3, 750750.0, 2.0/3*3").fetchone())
c.close()
""",
    volatile=(),
)
py(
    "datetime-time",
    """
import datetime as dt, time, calendar
d = dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
print(d.isoformat(), d.timestamp(), (d + dt.timedelta(days=400)).strftime("%A %d %B %Y %j"))
print(time.strftime("%Y-%m-%d %H:%M", time.gmtime(1e9)), calendar.isleap(2100))
print(calendar.month(2020, 2))
t0 = time.monotonic(); time.sleep(0.01); print(time.monotonic() - t0 >= 0.01)
""",
)
py(
    "textwrap-string",
    """
import textwrap, string, unicodedata
t = "The quick brown fox jumps over the lazy dog. " * 3
print(textwrap.fill(t, 30)); print(textwrap.shorten(t, 40))
print(string.Template("$a + $b").substitute(a=1, b=2), "{:>8.3f}|{:08b}|{:,}".format(3.14159, 5, 10**7))
print(unicodedata.name("\\u00e9"), "stra\\u00dfe".upper(), "\\u00c5".casefold())
""",
)
py(
    "asyncio",
    """
import asyncio
async def worker(n, out):
    await asyncio.sleep(0.01 * (3 - n)); out.append(n)
async def main():
    out = []
    await asyncio.gather(*(worker(i, out) for i in range(3)))
    proc = await asyncio.create_subprocess_exec("echo", "async", stdout=asyncio.subprocess.PIPE)
    print(out, (await proc.communicate())[0], proc.returncode)
asyncio.run(main())
""",
)
py(
    "tempfile-glob-stat",
    """
import tempfile, glob, os, stat
with tempfile.TemporaryDirectory() as d:
    for n in ("b.txt", "a.txt", "c.log"): open(os.path.join(d, n), "w").write(n)
    print(sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.txt"))))
    st = os.stat(os.path.join(d, "a.txt")); print(st.st_size, stat.S_ISREG(st.st_mode))
    print(sorted(e.name for e in os.scandir(d)))
os.makedirs("x/y"); os.symlink("y", "x/l"); print(os.path.islink("x/l"), os.listdir("x/l"))
""",
)
py(
    "exceptions-exit",
    """
import sys
try:
    {}["missing"]
except KeyError as e:
    print("caught", repr(e))
print("to stderr", file=sys.stderr)
raise SystemExit("fatal: the message")
""",
)
py(
    "traceback",
    """
def f(n):
    return 1 / n
f(0)
""",
)
py(
    "signal",
    """
import signal, os, time
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGUSR1); print(got)
signal.signal(signal.SIGALRM, lambda s, f: got.append("alarm")); signal.setitimer(signal.ITIMER_REAL, 0.01)
time.sleep(1); print(got)
""",
)

# perl ---------------------------------------------------------------------------------------

w(
    "perl-oneliners",
    "perl -ne 'print if /dolor/' lorem; perl -pe 's/(\\w+)/\\u$1/g' lorem | head -2; "
    "perl -lane 'print $F[2] if $. <= 3' big; perl -e 'print join(\",\", map { $_ ** 2 } 1..5), \"\\n\"'",
    files={"lorem": LOREM, "big": BIG},
    needs=("perl",),
)
w(
    "perl-script",
    argv=("perl", "prog.pl", "table"),
    files={
        "table": TABLE,
        "prog.pl": """
use strict; use warnings;
my %sum; my %n;
open(my $fh, "<", $ARGV[0]) or die; <$fh>;
while (<$fh>) { chomp; my @f = split /,/; $sum{$f[2]} += $f[3]; $n{$f[2]}++; }
for my $d (sort { $sum{$b} <=> $sum{$a} } keys %sum) { printf "%-6s %8.3f %d\\n", $d, $sum{$d}, $n{$d}; }
my @s = sort { $a <=> $b } (10, 9, 100, -3); print "@s\\n";
my $str = "a1b22c333"; my @m = $str =~ /(\\d+)/g; print scalar(@m), " @m\\n";
printf "%.15g %.3e %s\\n", 0.1 + 0.2, 12345.6789, 1e21;
""",
    },
)
w(
    "perl-modules",
    argv=(
        "perl",
        "-MDigest::MD5=md5_hex",
        "-MList::Util=sum,max,shuffle",
        "-MPOSIX=floor,strftime",
        "-MData::Dumper",
        "-e",
        """
print md5_hex("hello"), " ", sum(1..100), " ", max(3, 9, 2), " ", floor(-2.5), "\\n";
print strftime("%Y-%m-%d %H:%M:%S", gmtime(1234567890)), "\\n";
$Data::Dumper::Sortkeys = 1; $Data::Dumper::Indent = 1; print Dumper({a => [1, 2], b => "x"});
print join(",", unpack("N n C", pack("N n C", 305419896, 4660, 255))), "\\n";
""",
    ),
)
w(
    "perl-processes",
    argv=(
        "perl",
        "-e",
        """
my $out = `echo backticks; exit 3`; print $out, $? >> 8, "\\n";
open(my $p, "-|", "seq", "3") or die; my @l = <$p>; close $p; print scalar(@l), "\\n";
open(my $w, "|-", "tr a-z A-Z") or die; print $w "piped\\n"; close $w;
my $pid = fork(); if ($pid == 0) { exit 6 } waitpid($pid, 0); print "child ", $? >> 8, "\\n";
system("sh", "-c", "exit 2"); print "system ", $? >> 8, "\\n";
$SIG{ALRM} = sub { print "alarm\\n" }; alarm 1; sleep 2; print "woke\\n";
""",
    ),
)
w(
    "perl-files",
    argv=(
        "perl",
        "-e",
        """
mkdir "d" or die; open(my $f, ">", "d/x.txt") or die; print $f "line $_\\n" for 1..5; close $f;
open($f, "<", "d/x.txt"); my @a = <$f>; close $f; print scalar(@a), " $a[-1]";
opendir(my $dh, "."); print join(" ", sort grep { !/^\\./ } readdir $dh), "\\n";
rename "d/x.txt", "d/y.txt"; print -e "d/y.txt" ? "renamed\\n" : "no\\n"; print -s "d/y.txt", "\\n";
local $/; open($f, "<", "d/y.txt"); my $all = <$f>; print length($all), "\\n";
utime 1000000000, 1000000000, "d/y.txt"; print((stat "d/y.txt")[9], "\\n");
""",
    ),
)
w(
    "perl-sort-hash-regex",
    argv=(
        "perl",
        "-e",
        """
my %h = map { $_ => length } qw(pear apple fig banana cherry);
print join(" ", map {"$_=$h{$_}"} sort { $h{$a} <=> $h{$b} or $a cmp $b } keys %h), "\\n";
my $t = "The year 1999 and 2021"; (my $u = $t) =~ s/(\\d+)/<$1>/g; print "$u\\n";
print join("|", split /\\s*,\\s*/, "a , b,c ,d"), "\\n"; print scalar reverse("abc"), "\\n";
print sprintf("%05.2f|%-5s|%x|%b", 3.14159, "ab", 255, 10), "\\n"; print lc("ÀB"), uc "straße", "\\n";
""",
    ),
)
w("perl-die-warn", argv=("perl", "-e", "warn qq{careful\\n}; print qq{out\\n}; die qq{dead\\n}"))

# sqlite3 ------------------------------------------------------------------------------------

SQL = """
create table emp (id integer primary key, name text, dept text, salary real);
.mode list
.import --csv --skip 1 table emp
select count(*), sum(salary), avg(salary), min(salary), max(salary) from emp;
select dept, round(avg(salary), 2), group_concat(name, '/') from emp group by dept order by dept;
select 750750.0, 1.0/3, 0.1 + 0.2, 2.0/3*3, 1e300*10, 12345678901234567890.0;
select printf('%.3f|%5d|%s', 3.14159, 42, 'x'), abs(-2.5), cast(7.9 as integer), 10 % 3;
"""
w(
    "sqlite3-memory",
    argv=("sqlite3", ":memory:"),
    files={"table": TABLE},
    env={},
    known="",
)
w(
    "sqlite3-file-db",
    "sqlite3 db < script.sql; sqlite3 db 'select count(*) from emp'; "
    "sqlite3 -csv -header db 'select * from emp where salary > 90'",
    files={"table": TABLE, "script.sql": SQL},
    needs=("sqlite3",),
)
w(
    "sqlite3-floats",
    argv=(
        "sqlite3",
        ":memory:",
        "select 750750.0, 0.1, 1.0/7, 1e-10, 123.456e5, "
        "round(2.675, 2), sum(x) from (select 0.1 as x union all select 0.2);",
    ),
)
w(
    "sqlite3-json-window",
    argv=(
        "sqlite3",
        ":memory:",
        """
select json_object('a', 1, 'b', json_array(1, 2.5, 'x'));
select json_extract('{"k": [10, 20]}', '$.k[1]');
with recursive c(x) as (select 1 union all select x + 1 from c where x < 10)
select x, sum(x) over (order by x rows 2 preceding), row_number() over () from c where x % 3 = 0;
select date('2021-03-04', '+1 month'), strftime('%j %W', '2020-12-31'), julianday('2000-01-01');
""",
    ),
)
w(
    "sqlite3-modes",
    argv=(
        "sqlite3",
        ":memory:",
        "-cmd",
        ".mode box",
        "select 1 as a, 'two' as b union all select 3.5, null",
    ),
)

# git ----------------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_AUTHOR_NAME": "A U Thor",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "C O Mitter",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "2021-01-02T03:04:05Z",
    "GIT_COMMITTER_DATE": "2021-01-02T03:04:05Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}
# The index records each file's ctime, inode and device: its bytes differ run to run.
GIT_VOLATILE = (".git/index", "r/.git/index")
GIT_SETUP = (
    "git init -q -b main r && cd r && printf 'one\\ntwo\\n' > a && git add a && "
    "git commit -q -m first && "
)
w(
    "git-init-commit-log",
    GIT_SETUP + "echo three >> a && git commit -q -am second && "
    "git log --format='%H %an %ad %s' --date=iso && git log --oneline --stat",
    env=GIT_ENV,
    volatile=GIT_VOLATILE,
    needs=("git",),
)
w(
    "git-diff-status",
    GIT_SETUP + "echo new >> a && echo b > b && git status --short && "
    "git diff && git add b && git diff --cached --stat && git status",
    env=GIT_ENV,
    volatile=GIT_VOLATILE,
    needs=("git",),
)
w(
    "git-branch-merge",
    GIT_SETUP + "git checkout -q -b feat && echo f > f && git add f && "
    "git commit -q -m feat && git checkout -q main && echo m > m && git add m && "
    "git commit -q -m main && git merge -q --no-edit feat && git log --graph --oneline && "
    "git branch -a && git rev-parse HEAD",
    env=GIT_ENV,
    volatile=GIT_VOLATILE,
    needs=("git",),
    timeout=300,
)
w(
    "git-tag-show-blame",
    GIT_SETUP + "git tag -a v1 -m 'release one' && git show --stat v1 && "
    "git blame a && git cat-file -p HEAD && git describe",
    env=GIT_ENV,
    volatile=GIT_VOLATILE,
    needs=("git",),
)
w(
    "git-archive",
    GIT_SETUP + "git archive --format=tar HEAD | tar tvf - && "
    "git archive --format=tar.gz -o ../a.tgz HEAD && cd .. && rm -rf r && gzip -dc a.tgz | "
    "sha256sum",
    env=GIT_ENV,
    volatile=GIT_VOLATILE,
    needs=("git",),
)

# archives and compressors ------------------------------------------------------------------

TAR_FIXED = "--sort=name --mtime=2020-01-01 --owner=0 --group=0 --numeric-owner"
TREE = {"tree/a.txt": LOREM, "tree/sub/b.txt": BIG, "tree/sub/bin": BIN, "tree/c": "c\n"}
w(
    "tar-create-list",
    f"tar cf t.tar {TAR_FIXED} tree && tar tvf t.tar && sha256sum t.tar",
    files=TREE,
    needs=("tar",),
)
w(
    "tar-extract",
    f"tar cf t.tar {TAR_FIXED} tree && mkdir out && tar xf t.tar -C out && "
    "diff -r tree out/tree && echo same && tar xOf t.tar tree/c",
    files=TREE,
    needs=("tar",),
)
w(
    "tar-gzip",
    f"tar czf t.tgz {TAR_FIXED} tree && gzip -l t.tgz | tail -1 | wc -w && "
    "tar tzf t.tgz && mkdir x && tar xzf t.tgz -C x && find x -type f | sort",
    files=TREE,
    needs=("tar", "gzip"),
)
w(
    "tar-xz",
    f"tar cJf t.txz {TAR_FIXED} tree && xz -l t.txz | tail -1 | cut -c1-40 && "
    "tar tJf t.txz | sort",
    files=TREE,
    needs=("tar", "xz"),
)
w(
    "tar-zstd",
    f"tar --zstd -cf t.tzst {TAR_FIXED} tree && tar --zstd -tvf t.tzst",
    files=TREE,
    needs=("tar", "zstd"),
)
w(
    "gzip-roundtrip",
    "gzip -9 -k big && gzip -t big.gz && gunzip -c big.gz | cmp - big && "
    "ls && zcat big.gz | tail -1 && gzip -n -c bin | sha256sum",
    files={"big": BIG, "bin": BIN},
    needs=("gzip",),
)
w(
    "gzip-stdin",
    "gzip < big | gzip -d | md5sum; echo garbage | gzip -d; echo $?",
    files={"big": BIG},
    needs=("gzip",),
)
w(
    "xz-roundtrip",
    "xz -k -6 big && xz -t big.xz && xz -dc big.xz | cmp - big && "
    "sha256sum big.xz && xz -l big.xz | tail -1 | cut -c1-30",
    files={"big": BIG},
    needs=("xz",),
)
w(
    "xz-threads",
    "xz -T2 -c big > t.xz && xz -dc t.xz | md5sum && xz --format=lzma -c bin | "
    "unlzma | cmp - bin && echo lzma",
    files={"big": BIG * 3, "bin": BIN},
    needs=("xz",),
)
w(
    "zstd-roundtrip",
    "zstd -q -19 big -o big.zst && zstd -q -t big.zst && zstd -dc big.zst | "
    "cmp - big && sha256sum big.zst && zstd -q -c -T2 bin | zstd -dc | md5sum",
    files={"big": BIG, "bin": BIN},
    needs=("zstd",),
)
w(
    "bzip2-roundtrip",
    "bzip2 -k big && bzip2 -t big.bz2 && bzcat big.bz2 | md5sum && sha256sum big.bz2",
    files={"big": BIG},
    needs=("bzip2",),
)
w(
    "pigz-roundtrip",
    "pigz -p 2 -k big && pigz -t big.gz && pigz -dc big.gz | cmp - big && "
    "pigz -n -c -p 2 bin | sha256sum && pigz -l big.gz | tail -1 | wc -w",
    files={"big": BIG * 4, "bin": BIN},
    needs=("pigz",),
)
w(
    "tar-pigz",
    f"tar -I 'pigz -p 2 -n' -cf t.tgz {TAR_FIXED} tree && tar -I pigz -tf t.tgz",
    files=TREE,
    needs=("tar", "pigz"),
)
w(
    "cpio-roundtrip",
    "find tree | sort | cpio -o -H newc --quiet --reproducible > t.cpio; "
    "mkdir o; cd o && cpio -id --quiet < ../t.cpio && find . | sort",
    files=TREE,
    needs=("cpio",),
)

# node ---------------------------------------------------------------------------------------


def node(name: str, code: str, **kw) -> None:
    w(f"node-{name}", argv=("node", "-e", code), timeout=300, **kw)


node(
    "json-math",
    """
const d = {b: [1, 2.5, null, true], a: {x: "\\u00e9"}, c: 1e100};
console.log(JSON.stringify(d), JSON.stringify(d, null, 1).split("\\n").length);
console.log(0.1 + 0.2, Math.sqrt(2), (1234.5678).toFixed(2), 2 ** 53 + 1, 7n ** 30n);
console.log([10, 9, 100, -3].sort(), [10, 9, 100, -3].sort((a, b) => a - b));
""",
)
node(
    "crypto-buffer",
    """
const c = require("crypto");
console.log(c.createHash("sha256").update("hello").digest("hex"));
console.log(c.createHmac("sha1", "k").update("v").digest("base64"));
const b = Buffer.from("héllo wörld"); console.log(b.length, b.toString("hex"), b.toString("base64"));
""",
)
node(
    "fs-path",
    """
const fs = require("fs"), path = require("path");
fs.mkdirSync("a/b", {recursive: true}); fs.writeFileSync("a/b/f.txt", "data\\n");
console.log(fs.readdirSync("a/b"), fs.statSync("a/b/f.txt").size, path.join("/x", "../y", "z.js"));
fs.renameSync("a/b/f.txt", "a/g.txt"); console.log(fs.existsSync("a/g.txt"), path.extname("a.tar.gz"));
""",
)
node(
    "child-process",
    """
const cp = require("child_process");
console.log(cp.execSync("echo sync; seq 3").toString());
const r = cp.spawnSync("sh", ["-c", "echo err >&2; exit 4"]); console.log(r.status, r.stderr.toString());
cp.exec("sort -r", (e, out) => console.log("async", JSON.stringify(out))).stdin.end("a\\nc\\nb\\n");
""",
)
node(
    "promises-timers",
    """
const order = [];
setTimeout(() => order.push("timeout"), 10);
Promise.resolve().then(() => order.push("micro"));
process.nextTick(() => order.push("tick"));
(async () => { await new Promise(r => setTimeout(r, 30)); order.push("await"); console.log(order); })();
""",
)

# busybox ------------------------------------------------------------------------------------

BB = {"words": WORDS, "lorem": LOREM, "big": BIG, "bin": BIN, "passwd": PASSWD, "table": TABLE}
bb(
    "sort-uniq",
    "sort words | uniq -c | sort -rn | head -4; sort -n -r words | head -3",
    files=BB,
)
bb("wc-head-tail", "wc big; head -n 2 lorem; tail -n 1 big; tail -c 8 lorem", files=BB)
bb(
    "tr-cut",
    "tr 'a-z' 'A-Z' < lorem | head -1; cut -d: -f1,3 passwd; cut -c2-4 words | head -3",
    files=BB,
)
bb(
    "seq-expr-printf",
    "seq 3 3 12; expr 6 \\* 7; printf '%05d|%-3s|%.3f\\n' 42 ab 2.5; echo $((7 * 191))",
)
bb(
    "checksums",
    "md5sum big; sha1sum big; sha256sum bin; sha512sum words; sha3sum lorem",
    files=BB,
)
bb(
    "base64-od-xxd",
    "base64 bin | head -2; od -A x -t x1 -N 32 bin; xxd -l 32 bin; hexdump -C -n 32 bin",
    files=BB,
)
bb(
    "grep",
    "grep -n dolor lorem; grep -c a words; grep -E '^(root|bob)' passwd; "
    "grep -v -i ut lorem | wc -l",
    files=BB,
)
bb(
    "sed",
    "sed 's/dolor/DOLOR/g' lorem | head -2; sed -n '2,3p' passwd; sed -i 's/:x:/:*:/' "
    "passwd; head -1 passwd",
    files=BB,
)
bb(
    "awk",
    "awk -F, 'NR>1{s[$3]+=$4} END{for (d in s) printf \"%s %.3f\\n\", d, s[d]}' table | "
    'sort; awk \'BEGIN{printf "%.5f %d %s\\n", 10/3, 2*21, substr("abcdef", 2, 3)}\'',
    files=BB,
)
bb(
    "find-xargs",
    "mkdir -p t/a t/b; touch t/a/x.c t/b/y.c t/z.h; find t -name '*.c' | sort; "
    "find t -type f | sort | xargs -n 2 echo",
)
bb(
    "ls-stat-touch",
    "touch -d '2019-05-06 07:08:09' big; chmod 640 big; "
    "ls -l big | cut -c1-10,34-; stat -c '%n %s %a %Y' big; mkdir d; ls -ld d | cut -c1-10",
    files=BB,
)
bb(
    "cp-mv-ln-rm",
    "mkdir -p a/b; cp words a/b/w; cp -r a c; mv c/b c/d; ln -s d c/l; rm -r a; "
    "find . | sort; readlink c/l",
    files=BB,
)
bb(
    "date-cal",
    "date -u -d '2021-03-04 05:06:07' '+%F %T %a %j'; date -u -d @86400; cal 2 2020",
)
bb(
    "gzip-tar",
    "tar cf t.tar lorem words && gzip -9 t.tar && gzip -t t.tar.gz && "
    "tar tzf t.tar.gz && mkdir o && tar xzf t.tar.gz -C o && cmp o/lorem lorem && echo same",
    files=BB,
)
bb(
    "bzip2-xz",
    "bzip2 -c big | bunzip2 | md5sum; /usr/bin/xz -c big | unxz | md5sum; "
    "bzip2 -c bin | sha256sum",
    files=BB,
)
bb(
    "diff-patch",
    "diff -u a b > p; echo $?; patch a < p; cmp a b && echo patched",
    files={"a": LOREM, "b": LOREM.replace("sit", "SIT")},
)
bb(
    "sh-script",
    """
f() { echo "f: $#"; return 2; }
f a b c; echo $?
x=$(echo nested $(echo deep)); echo "$x"
for i in 1 2 3; do echo -n "$i "; done; echo
case foo in f*) echo matched;; esac
(exit 3); echo $?
trap 'echo bye' EXIT
""",
)
bb(
    "sh-background",
    "(sleep 0.1; echo late) & echo early; wait; (exit 6) & wait $!; echo $?",
)
bb(
    "sh-heredoc-read",
    'while read a b; do echo "$b-$a"; done <<EOF\n1 x\n2 y\nEOF\n'
    "read -r l < passwd; echo ${l%%:*}",
    files=BB,
)
bb(
    "nl-tac-rev-fold",
    "nl lorem | head -2; tac words | head -2; echo abc | rev; fold -w 20 lorem | head -2",
    files=BB,
)
bb("dc-bc", "echo '2 10 ^ p' | dc; echo 'scale=5; 4*a(1)' | bc -l; echo '7 3 / p' | dc")
bb("factor-shuf", "factor 1234567 97 600851475143; seq 5 | shuf -n 5 | sort")
bb("du-df-truncate", "truncate -s 5000 f; du -k big; stat -c %s f; wc -c f", files=BB)
bb(
    "cpio",
    # The newc headers record inode numbers, so the archive itself is not kept.
    "find big words | cpio -o -H newc > a.cpio 2>/dev/null; wc -c < a.cpio; mkdir o; cd o; "
    "cpio -i < ../a.cpio 2>/dev/null; ls; cmp big ../big && rm ../a.cpio",
    files=BB,
)
bb("uuencode-strings", "uuencode bin bin | head -2; strings -n 6 lorem | head -2", files=BB)
bb(
    "test-applets",
    "[ -f big ] && echo file; test -d . && echo dir; [ 3 -gt 2 ] && echo gt; "
    "true; echo $?; false; echo $?; which sh | wc -l",
    files=BB,
)
bb(
    "basename-dirname-realpath",
    "basename /a/b/c.txt .txt; dirname /a/b/c.txt; mkdir -p x/y; "
    'realpath x/y/.. | sed "s|$PWD|PWD|"',
)
bb(
    "unix2dos-md5",
    "unix2dos -u lorem 2>/dev/null || cp lorem l2; unix2dos lorem; od -c lorem "
    "| head -2; dos2unix lorem; md5sum lorem",
    files=BB,
)
bb("timeout-sleep", "timeout 2 sleep 0.05; echo $?; timeout 0.1 sleep 2; echo $?")
bb("env-printenv", "env -i FOO=bar env; printenv TZ LANG")
bb("mktemp-count", "d=$(mktemp -d -p .); ls -d tmp.* | wc -l; rmdir $d")
bb("paste-expand", "seq 6 | paste - - -; printf 'a\\tb\\n' | expand -t 3", files=BB)
bb("sum-crc32", "crc32 bin 2>/dev/null || cksum bin; md5sum bin", files=BB)
bb("hexdump-formats", 'hexdump -e \'16/1 "%02x" "\\n"\' -n 48 bin', files=BB)
