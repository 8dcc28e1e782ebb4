"""core/net without a network: the one retry mechanism (urllib3's Retry, bounded) and the proxy rules."""

import email.utils
import time

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError

from satclassify_plugin.core.contract.errors import SatClassifyError
from satclassify_plugin.core.net import DeadlineRetry, Deadlines, ProxyConfig, Watch


class Answer:
    """The part of a urllib3 response Retry reads."""

    def __init__(self, status=503, retry_after=None):
        self.status = status
        self.headers = {} if retry_after is None else {"Retry-After": retry_after}

    def getheader(self, name, default=None):  # urllib3 1.26
        return self.headers.get(name, default)

    def get_redirect_location(self):
        return False


def retry(**kw):
    return DeadlineRetry.for_client(kw.pop("retries", 3), kw.pop("backoff", 1.0), kw.pop("max_wait", 30.0), **kw)


@pytest.mark.parametrize(
    "value,expected",
    [("3", 3.0), (" 0 ", 0.0), ("-1", None), ("soon", None), ("", None), ("1.5", None), ("inf", None), ("3600", 30.0)],
)
def test_retry_after_is_urllib3s_capped_and_invalid_falls_back(value, expected):
    """urllib3 parses Retry-After (delta-seconds); what it rejects falls back to the backoff instead of failing
    the call; a long wait is capped at max_wait."""
    assert retry().get_retry_after(Answer(retry_after=value)) == expected


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert retry().get_retry_after(Answer(retry_after=when)) == pytest.approx(10.0, abs=1.5)
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert retry().get_retry_after(Answer(retry_after=past)) == 0.0


def test_backoff_doubles_from_the_first_retry_and_is_capped():
    r = retry(backoff=0.5, max_wait=3.0, retries=6)
    waits = []
    for _ in range(5):
        r = r.increment("GET", "/x", response=Answer(503))
        waits.append(r.delay(Answer(503)))
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert r.delay(Answer(503, retry_after="2")) == 2.0  # Retry-After wins over the backoff


def test_retries_are_announced_and_counted():
    msgs = []
    r = retry(retries=2, backoff=0.01, on_retry=msgs.append)
    with Watch("h.example", "catalogue search") as w:
        r = r.increment("GET", "/x", response=Answer(429, retry_after="1"))
        r = r.increment("GET", "/x", error=NewConnectionError(None, "refused"))
        assert w.tries == 3
        with pytest.raises(MaxRetryError):
            r.increment("GET", "/x", response=Answer(503))
    assert msgs == [
        "catalogue search: h.example answered HTTP 429; retrying in 1.0 s (try 2 of 3)",
        "catalogue search: h.example failed (NewConnectionError); retrying in 0.0 s (try 3 of 3)",
    ]


def test_no_retry_whose_wait_ends_past_the_deadline():
    r = retry(retries=3, max_wait=30)
    with Watch("h", policy=Deadlines.from_timeout(5), total=5):
        with pytest.raises(MaxRetryError):  # 20 s > the 5 s left: the answer is reported, no wait
            r.increment("GET", "/x", response=Answer(503, retry_after="20"))
        assert r.increment("GET", "/x", response=Answer(503, retry_after="1")).total == 2


def test_a_wait_ends_at_once_on_cancel():
    t = time.monotonic()
    with Watch("h", is_canceled=lambda: time.monotonic() - t > 0.2):
        with pytest.raises(SatClassifyError, match="cancelled"):
            retry(retries=1).increment("GET", "/x", response=Answer(503, retry_after="20")).sleep(
                Answer(503, retry_after="20")
            )
    assert time.monotonic() - t < 1.5


# ------------------------------------------------------------------------------------------------- proxy


def test_no_proxy_rules():
    p = ProxyConfig.from_url(
        "proxy.example:3128", no_proxy=["example.org", ".corp", "10.0.0.0/8", "host:8080"], exclude=["http://intranet/"]
    )
    assert p.http == p.https == "http://proxy.example:3128"
    direct = [
        "https://example.org/x",
        "https://a.b.example.org/x",
        "http://x.corp/",
        "http://10.1.2.3/",
        "http://host:8080/",
        "http://intranet/wms",
    ]
    proxied = [
        "https://example.org.evil/",
        "https://notexample.org/",
        "http://host:80/",
        "http://11.0.0.1/",
        "http://intranet2/",
        "https://earth-search.aws.element84.com/v1",
    ]
    assert [u for u in direct if p.proxy_for(u)] == []
    assert [u for u in proxied if p.proxy_for(u) != "http://proxy.example:3128"] == []
    assert ProxyConfig.from_url("p:1", no_proxy=["*"]).for_url("https://any/") == {}


def test_proxy_from_the_environment():
    env = {
        "HTTPS_PROXY": "http://up:3128",
        "http_proxy": "low:8080",
        "HTTP_PROXY": "http://upper:1",
        "no_proxy": "localhost,127.0.0.1",
    }
    p = ProxyConfig.from_env(env)
    assert (p.https, p.http) == ("http://up:3128", "http://low:8080")  # lower case wins, no scheme means http
    assert p.for_url("http://127.0.0.1:5000/x") == {} and p.for_url("https://a/") == {"https": "http://up:3128"}
    assert not ProxyConfig.from_env({}) and ProxyConfig.from_env({}).gdal_options() == {}
    assert ProxyConfig.from_env({"ALL_PROXY": "socks5h://s:1080"}).http == "socks5h://s:1080"


def test_proxy_login_gdal_options_and_secrets():
    p = ProxyConfig.from_url("http://proxy:3128", user="bob", password="p@ss:w/rd")
    assert p.proxy_for("https://a/") == "http://bob:p%40ss%3Aw%2Frd@proxy:3128"
    assert p.gdal_options() == {
        "GDAL_HTTP_PROXY": "proxy:3128",
        "GDAL_HTTPS_PROXY": "proxy:3128",
        "GDAL_HTTP_PROXYUSERPWD": "bob:p@ss:w/rd",
    }
    assert set(p.secrets()) == {"p@ss:w/rd", "p%40ss%3Aw%2Frd"} and "p@ss" not in repr(p)
    inline = ProxyConfig.from_url("http://ann:s3cr%40t@proxy:1")
    assert inline.login() == ("ann", "s3cr@t") and inline.gdal_options()["GDAL_HTTP_PROXYUSERPWD"] == "ann:s3cr@t"
    assert ProxyConfig.from_url("socks5h://s:1080").gdal_options()["GDAL_HTTP_PROXY"] == "socks5h://s:1080"


def test_socks_proxy_without_pysocks_says_what_to_install():
    import importlib.util

    if importlib.util.find_spec("socks") is not None:
        pytest.skip("PySocks is installed here")
    with pytest.raises(SatClassifyError, match=r"SOCKS proxy, which needs the Python package 'PySocks'"):
        ProxyConfig.from_url("socks5h://s:1080", origin="QGIS").check()
