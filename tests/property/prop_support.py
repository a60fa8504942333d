"""Shared pieces of the property-based tests: reproducible settings and hostile text.

Every property test uses :data:`REPRODUCIBLE` (or a copy with another ``max_examples``):
derandomized, so CI runs the same examples every time, and without the example
database, so no ``.hypothesis`` folder is written into the tree.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Derandomized, no deadline (the first example pays imports), no example database.
REPRODUCIBLE = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def examples(count: int) -> settings:
    """:data:`REPRODUCIBLE` with ``count`` examples."""
    return settings(REPRODUCIBLE, max_examples=count)


#: Payloads that break out of HTML, attributes, scripts, XML, CDATA, templates or Markdown,
#: and characters that reorder or hide text.
PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "javascript:alert(1)",
    "[klik](javascript:alert(1))",
    "]]>",
    "<![CDATA[x]]>",
    "{{ 7*7 }}",
    "{% for x in range(9) %}x{% endfor %}",
    "${7*7}",
    "</textarea></title></style><b>",
    "&amp;&lt;&#60;&",
    "<!--",
    "\u202eevil\u202c",  # right-to-left override
    "\u2066\u2067\u2068\u2069",  # bidi isolates
    "\u200b\u200d\ufeff",  # zero-width
    "\u2028\u2029",  # JS line separators
    "*bold* _em_ `code` | cell # h",
    "\x0b\x0c\x1b\x7f",  # controls XML cannot hold
    "😀👩‍👩‍👧 ‮",
)

#: Text that mixes the payloads with arbitrary unicode (no surrogates: they cannot be
#: encoded, and neither TOML, JSON files nor the command line carry them).
hostile_text = st.lists(
    st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=12)), min_size=1, max_size=4
).map("".join)


def visible(text: str) -> bool:
    """Whether ``text`` has a character worth looking for in an output (not only blanks)."""
    return bool(text.strip())
