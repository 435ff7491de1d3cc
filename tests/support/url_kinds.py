"""Kinds of URL that broke real pipelines, each with its members, for parametrised tests.

Members come from public bug reports (named beside them) and from the shared
cases; generators add the rest of each kind so a fix covers the kind, not one
string. ``HOST`` in a template is replaced by a test server's ``host:port``.
"""

from __future__ import annotations

# -- can never be fetched: refused at registration, a failed row if already in a manifest ---------

#: Lone surrogates (JSON escapes like "\ud800" decode to them): cases/README "lone surrogate";
#: aio-libs/aiohttp#207 ('\udcc3' in a path), tox-dev/turbohtml#377 ('\udce9').
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udcc3", "\udce9", "\udfff"]


def surrogate_urls() -> list[str]:
    """A lone surrogate in the path, the query, the file name and the host."""
    out = []
    for s in SURROGATES:
        out += [f"http://HOST/img/bad{s}.png", f"http://HOST/img/a.png?q={s}", f"http://bad{s}.example/a.png"]
    return out


#: Punycode labels current IDNA rules refuse (emoji or otherwise invalid A-labels):
#: cases/README "IDN host" (xn--ls8h.la), kjd/idna#60 (xn--mn8ha4uc), kjd/idna#255 (three hosts),
#: kjd/idna#82 (a bare "xn--").
BAD_IDNA_HOSTS = [
    "xn--ls8h.la",
    "xn--mn8ha4uc.com",
    "xn--lw8h.xn--9s9h.it.com",
    "xn--4t8h.dwk.io",
    "xn--7s9h.que.trolling.win",
    "xn--.com",
    "cdn.xn--ls8h.la",  # the bad label need not come first
    "XN--LS8H.LA",  # nor be lower-case
    "start\u200c.com",  # a joiner where IDNA 2008 forbids it (curabase/favicon-getter#16)
    "a\u00ad\u0301.com",  # a combining mark after a soft hyphen
]

#: Control characters (C0, DEL, C1) anywhere in a URL.
CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x80", "\x9b"]

BAD_PORTS = ["0", "65536", "99999"]

MAX_URL_LENGTH = 4096


def unfetchable_urls() -> list[str]:
    """Every member of every kind the fetcher's own parser refuses (templates with HOST)."""
    urls = surrogate_urls()
    urls += [f"http://{host}/ad.png" for host in BAD_IDNA_HOSTS]
    urls += [f"http://HOST/img/a{c}b.png" for c in CONTROLS]
    urls += [f"http://cdn.example:{port}/ad.png" for port in BAD_PORTS]
    urls.append("http://HOST/" + "a" * (MAX_URL_LENGTH + 1))
    return urls


#: Refused at registration by policy although the fetcher could send them.
USERINFO_URLS = ["http://user:pw@cdn.example/a.png", "http://user@cdn.example/a.png", "http://:pw@cdn.example/a.png"]

# -- look odd, but are fetchable: must be accepted ---------------------------------------------------

#: kjd/idna#27 and servo/rust-url#207: hyphens in the 3rd and 4th positions (Google video hosts);
#: valid IDNs written as U-labels and A-labels.
ODD_BUT_FETCHABLE = [
    "https://r2---sn-huoa-cvhl.googlevideo.com/crossdomain.xml",
    "http://bücher.de/anzeige.png",
    "http://xn--bcher-kva.de/anzeige.png",
    "http://中国.icom.museum/ad.jpg",
    "http://xn--fiqs8s.icom.museum/ad.jpg",
    "http://cdn.example/%E2%82%AC/ad.png",
    "http://cdn.example/é/ad.png",
    "http://cdn.example:65535/ad.png",
    "http://cdn.example/" + "a" * (MAX_URL_LENGTH - 40),
]


def fill(template: str, host: str) -> str:
    """``template`` with ``HOST`` replaced."""
    return template.replace("HOST", host)
