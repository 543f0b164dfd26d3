"""``dcat:`` sources: the distributions of a DCAT catalog (RDF/XML, Turtle, JSON-LD), read with rdflib.

Every ``dcat:Dataset`` of the document is looked at; each distribution's
``dcat:downloadURL`` (else ``dcat:accessURL``) is a resource. Paged catalogs
are followed through Hydra (``hydra:next`` / ``hydra:nextPage``) under the
paging guard. ``formats`` filters on ``dct:format`` / ``dcat:mediaType`` (their
last segment, e.g. CSV, text/csv) or the file extension; ``q`` keeps the
datasets whose title contains it, ``tags`` those with all those keywords.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from ..catalog import Source
from ..errors import PortalError
from ..fetch import get_document, redact
from .portal import Listed, PageGuard, auth_headers, format_matches

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
ACCEPT = "text/turtle, application/ld+json;q=0.9, application/rdf+xml;q=0.9, application/xml;q=0.5, */*;q=0.1"


def rdf_format(url: str, content_type: str, body: bytes) -> str:
    """rdflib's parser for a document, by media type, then extension, then a look at the first bytes."""
    ct = content_type.split(";")[0].strip().lower()
    by_type = {"text/turtle": "turtle", "application/x-turtle": "turtle", "application/ld+json": "json-ld",
               "application/rdf+xml": "xml", "application/n-triples": "nt", "text/n3": "n3"}
    if ct in by_type:
        return by_type[ct]
    path = urlsplit(url).path.lower()
    for ext, fmt in ((".ttl", "turtle"), (".jsonld", "json-ld"), (".json", "json-ld"), (".rdf", "xml"),
                     (".xml", "xml"), (".nt", "nt"), (".n3", "n3")):
        if path.endswith(ext):
            return fmt
    head = body[:1024].lstrip()
    if head.startswith((b"{", b"[")):
        return "json-ld"
    if head.startswith(b"<"):
        return "xml"
    return "turtle"


def _text(g: Graph, s: URIRef | BNode, p: URIRef) -> str | None:
    v = g.value(s, p)
    return None if v is None else str(v)


def _format(g: Graph, dist: URIRef | BNode) -> str | None:
    for p in (DCTERMS.format, DCAT.mediaType):
        v = g.value(dist, p)
        if v is None:
            continue
        if isinstance(v, BNode):  # <dct:format><dct:IMT><rdf:value>text/csv</rdf:value>…
            inner = g.value(v, RDF.value) or g.value(v, URIRef("http://www.w3.org/2000/01/rdf-schema#label"))
            if inner is not None:
                return str(inner)
            continue
        return str(v).rstrip("/").rsplit("/", 1)[-1] if isinstance(v, URIRef) else str(v)
    return None


def _next_page(g: Graph) -> str | None:
    for p in (HYDRA.next, HYDRA.nextPage, URIRef("http://www.w3.org/ns/hydra/core#nextPage")):
        for v in g.objects(None, p):
            return str(v)
    return None


def _parse(url: str, headers: dict[str, str]) -> tuple[Graph, str, bytes]:
    doc = get_document(url, headers={"Accept": ACCEPT, **headers}, secret_headers=frozenset(headers))
    head = doc.body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise PortalError(f"{redact(doc.url)} answered an HTML page, not a DCAT catalog: give the address of the "
                          "catalog file itself (catalog.ttl, catalog.rdf, catalog.jsonld)")
    fmt = rdf_format(doc.url, doc.content_type, doc.body)
    g = Graph()
    try:
        g.parse(data=doc.body, format=fmt, publicID=doc.url)
    except Exception as e:  # rdflib raises many types for bad input
        raise PortalError(f"{redact(doc.url)}: not readable as {fmt} RDF ({type(e).__name__}: {str(e)[:200]}); "
                          "check that the address serves a DCAT catalog") from None
    return g, doc.url, doc.body


def list_resources(src: Source) -> list[Listed]:
    headers = auth_headers(src.auth)
    url: str | None = src.location
    guard = PageGuard(src.location)
    listed: list[Listed] = []
    while url:
        g, final, body = _parse(url, headers)
        datasets = list(g.subjects(RDF.type, DCAT.Dataset))
        guard.page(final, body, [str(d) for d in datasets if isinstance(d, URIRef)])
        for ds in datasets:
            if not isinstance(ds, URIRef | BNode):
                continue
            if src.q and src.q.lower() not in " ".join(str(t) for t in g.objects(ds, DCTERMS.title)).lower():
                continue
            if src.tags and not set(src.tags) <= {str(k) for k in g.objects(ds, DCAT.keyword)}:
                continue
            ds_modified = _text(g, ds, DCTERMS.modified)
            for dist in g.objects(ds, DCAT.distribution):
                if not isinstance(dist, URIRef | BNode):
                    continue
                target = g.value(dist, DCAT.downloadURL) or g.value(dist, DCAT.accessURL)
                if target is None:
                    continue
                size = g.value(dist, DCAT.byteSize)
                ident = str(dist) if isinstance(dist, URIRef) else _text(g, dist, DCTERMS.identifier)
                item = Listed(
                    str(target).strip(), ident, _format(g, dist),
                    _text(g, dist, DCTERMS.modified) or ds_modified,
                    int(float(size)) if isinstance(size, Literal) and str(size).replace(".", "", 1).isdigit() else None,
                )
                if format_matches(item, src.formats):
                    listed.append(item)
        nxt = _next_page(g)
        url = nxt if nxt and datasets else None
    return listed
