"""The operations that task docstrings describe: a phrase, the line of code it means, and its constants."""
from __future__ import annotations

from dataclasses import dataclass

# The argument name is fixed per type, so no task needs the skill of copying a name.
VARIABLE = {"int": "n", "str": "s", "list": "xs"}

DIGITS = tuple(range(2, 10))
LETTERS = tuple("abcdeilmnorst")
SUFFIXES = ("ab", "ok", "xy", "no", "es", "ing")


@dataclass(frozen=True)
class Op:
    """One step of a task: ``phrase`` and ``code`` are templates over ``{c}`` (and ``{d}``)."""

    name: str
    kind: str
    phrase: str
    code: str
    constants: tuple = ()
    constants2: tuple = ()

    def render(self, c=None, d=None) -> tuple[str, str]:
        """The docstring clause and the code line for constants ``c`` and ``d``."""
        return self.phrase.format(c=c, d=d), self.code.format(c=c, d=d)


INT_OPS = [
    Op("add", "int", "add {c} to n", "n = n + {c}", DIGITS),
    Op("sub", "int", "subtract {c} from n", "n = n - {c}", DIGITS),
    Op("mul", "int", "multiply n by {c}", "n = n * {c}", DIGITS),
    Op("floordiv", "int", "divide n by {c}, rounding down", "n = n // {c}", DIGITS),
    Op("mod", "int", "take n modulo {c}", "n = n % {c}", DIGITS),
    Op("square", "int", "square n", "n = n * n"),
    Op("cube", "int", "cube n", "n = n ** 3"),
    Op("negate", "int", "negate n", "n = -n"),
    Op("abs", "int", "take the absolute value of n", "n = abs(n)"),
    Op("double", "int", "double n", "n = 2 * n"),
    Op("halve", "int", "halve n, rounding down", "n = n // 2"),
    Op("inc", "int", "increment n", "n = n + 1"),
    Op("dec", "int", "decrement n", "n = n - 1"),
    Op("max", "int", "raise n to at least {c}", "n = max(n, {c})", DIGITS),
    Op("min", "int", "cap n at {c}", "n = min(n, {c})", DIGITS),
    Op("lastdigit", "int", "keep only the last digit of n", "n = abs(n) % 10"),
    Op("digitsum", "int", "replace n by the sum of its digits", "n = sum(int(d) for d in str(abs(n)))"),
    Op("ndigits", "int", "replace n by its number of digits", "n = len(str(abs(n)))"),
    Op("revdigits", "int", "reverse the digits of n", "n = int(str(abs(n))[::-1])"),
    Op("collatz", "int", "halve n if it is even, else triple it and add one",
       "n = n // 2 if n % 2 == 0 else 3 * n + 1"),
    Op("clamp0", "int", "replace n by zero if it is negative", "n = max(n, 0)"),
    Op("triangle", "int", "replace n by the sum of 1 to n", "n = n * (n + 1) // 2"),
    Op("roundmul", "int", "round n down to a multiple of {c}", "n = n - n % {c}", DIGITS),
    Op("popcount", "int", "count the one bits of n", "n = bin(abs(n)).count(\"1\")"),
    Op("subifgt", "int", "subtract {c} from n if n is greater than {c}", "n = n - {c} if n > {c} else n", DIGITS),
]

STR_OPS = [
    Op("reverse", "str", "reverse s", "s = s[::-1]"),
    Op("upper", "str", "make s uppercase", "s = s.upper()"),
    Op("lower", "str", "make s lowercase", "s = s.lower()"),
    Op("title", "str", "capitalize every word of s", "s = s.title()"),
    Op("swapcase", "str", "swap the case of s", "s = s.swapcase()"),
    Op("strip", "str", "strip spaces from both ends of s", "s = s.strip()"),
    Op("remove", "str", "remove every \"{c}\" from s", "s = s.replace(\"{c}\", \"\")", LETTERS),
    Op("replace", "str", "replace every \"{c}\" in s by \"{d}\"", "s = s.replace(\"{c}\", \"{d}\")", LETTERS, LETTERS),
    Op("head", "str", "keep the first {c} characters of s", "s = s[:{c}]", DIGITS),
    Op("drop", "str", "drop the first {c} characters of s", "s = s[{c}:]", DIGITS),
    Op("tail", "str", "keep the last {c} characters of s", "s = s[-{c}:]", DIGITS),
    Op("append", "str", "append \"{c}\" to s", "s = s + \"{c}\"", SUFFIXES),
    Op("prepend", "str", "put \"{c}\" before s", "s = \"{c}\" + s", SUFFIXES),
    Op("twice", "str", "repeat s twice", "s = s * 2"),
    Op("letters", "str", "keep only the letters of s", "s = \"\".join(ch for ch in s if ch.isalpha())"),
    Op("novowels", "str", "remove the vowels from s", "s = \"\".join(ch for ch in s if ch not in \"aeiouAEIOU\")"),
    Op("sortchars", "str", "sort the characters of s", "s = \"\".join(sorted(s))"),
    Op("dedupe", "str", "remove repeated characters of s, keeping the first", "s = \"\".join(dict.fromkeys(s))"),
    Op("everyother", "str", "keep every other character of s", "s = s[::2]"),
    Op("rotate", "str", "rotate s left by {c}", "s = s[{c}:] + s[:{c}]", DIGITS),
    Op("doublech", "str", "double every character of s", "s = \"\".join(ch * 2 for ch in s)"),
    Op("nospace", "str", "remove the spaces from s", "s = s.replace(\" \", \"\")"),
    Op("revwords", "str", "reverse the order of the words of s", "s = \" \".join(s.split()[::-1])"),
    Op("firstword", "str", "keep the first word of s", "s = (s.split() or [\"\"])[0]"),
]

LIST_OPS = [
    Op("sort", "list", "sort xs", "xs = sorted(xs)"),
    Op("sortdesc", "list", "sort xs in descending order", "xs = sorted(xs, reverse=True)"),
    Op("reverse", "list", "reverse xs", "xs = xs[::-1]"),
    Op("addeach", "list", "add {c} to each element of xs", "xs = [x + {c} for x in xs]", DIGITS),
    Op("muleach", "list", "multiply each element of xs by {c}", "xs = [x * {c} for x in xs]", DIGITS),
    Op("squareeach", "list", "square each element of xs", "xs = [x * x for x in xs]"),
    Op("abseach", "list", "take the absolute value of each element of xs", "xs = [abs(x) for x in xs]"),
    Op("modeach", "list", "take each element of xs modulo {c}", "xs = [x % {c} for x in xs]", DIGITS),
    Op("evens", "list", "keep the even elements of xs", "xs = [x for x in xs if x % 2 == 0]"),
    Op("odds", "list", "keep the odd elements of xs", "xs = [x for x in xs if x % 2 == 1]"),
    Op("positives", "list", "keep the positive elements of xs", "xs = [x for x in xs if x > 0]"),
    Op("greater", "list", "keep the elements of xs greater than {c}", "xs = [x for x in xs if x > {c}]", DIGITS),
    Op("head", "list", "keep the first {c} elements of xs", "xs = xs[:{c}]", DIGITS),
    Op("drop", "list", "drop the first {c} elements of xs", "xs = xs[{c}:]", DIGITS),
    Op("unique", "list", "remove duplicates from xs, keeping the first", "xs = list(dict.fromkeys(xs))"),
    Op("cumsum", "list", "replace xs by its running sums",
       "xs = [sum(xs[:i + 1]) for i in range(len(xs))]"),
    Op("diffs", "list", "replace xs by the differences of neighbours",
       "xs = [b - a for a, b in zip(xs, xs[1:])]"),
    Op("removeval", "list", "remove every {c} from xs", "xs = [x for x in xs if x != {c}]", DIGITS),
    Op("appendval", "list", "append {c} to xs", "xs = xs + [{c}]", DIGITS),
    Op("negeach", "list", "negate each element of xs", "xs = [-x for x in xs]"),
    Op("rotate", "list", "rotate xs left by one", "xs = xs[1:] + xs[:1]"),
    Op("everyother", "list", "keep every other element of xs", "xs = xs[::2]"),
    Op("doubleeach", "list", "double each element of xs", "xs = [2 * x for x in xs]"),
    Op("capeach", "list", "cap each element of xs at {c}", "xs = [min(x, {c}) for x in xs]", DIGITS),
]

OPS_BY_KIND = {"int": INT_OPS, "str": STR_OPS, "list": LIST_OPS}
ALL_OPS = INT_OPS + STR_OPS + LIST_OPS
