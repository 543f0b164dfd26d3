"""The catalog as DCAT-AP (Turtle and JSON-LD), built with rdflib, for open datasets only.

Properties follow DCAT-AP 2/3 (the mandatory ones for a catalogue, a dataset
and a distribution, and the recommended ones we know), with the EU
vocabularies for frequency, access rights and file types, and the DCAT-AP FR
practice of pointing ``dct:conformsTo`` at the schema.data.gouv.fr schema.
Download URLs are ``base_url`` + the files of the ``datapackage`` layout
(``<id>/<id>.csv``…); without a ``base_url`` they are ``file:`` URLs of the
warehouse, fine for a look but not for a portal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, OWL, RDF, XSD

from ..catalog import CatalogEntry
from ..store.warehouse import VersionInfo
from .ckan import frequency, published_name
from .datapackage import license_descriptor
from .exports import ExportFile

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
EU = "http://publications.europa.eu/resource/authority/"
FREQUENCIES = {"hourly": "HOURLY", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "annual": "ANNUAL",
               "irregular": "IRREG"}
FILE_TYPES = {"data-parquet": "PARQUET", "data-csv": "CSV", "schema": "JSON", "report": "JSON"}


@dataclass(frozen=True)
class DcatDataset:
    entry: CatalogEntry
    info: VersionInfo
    files: list[ExportFile]


def schema_uri(info: VersionInfo, base: str | None) -> str | None:
    """What the data conforms to: the schema's own published URL when it declares one (national
    schemas carry their ``path``), the URL it was pinned to, else the copy we publish beside the data."""
    declared = info.schema.get("path")
    if isinstance(declared, str) and declared.startswith(("http://", "https://")):
        return declared
    if info.schema_ref and info.schema_ref.startswith(("http://", "https://")):
        return info.schema_ref
    if base:
        return base + f"{quote(info.dataset_id)}/{quote(info.dataset_id)}-schema.json"
    return None


def _agent(g: Graph, node: URIRef, name: str) -> URIRef:
    """Named nodes rather than blank ones: the same catalog then gives the same graph, run after run."""
    g.add((node, RDF.type, FOAF.Agent))
    g.add((node, FOAF.name, Literal(name)))
    return node


def build_graph(datasets: list[DcatDataset], *, base_url: str | None, title: str, publisher: str) -> Graph:
    g = Graph()
    for prefix, ns in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("vcard", VCARD), ("spdx", SPDX)):
        g.bind(prefix, ns)
    base = (base_url.rstrip("/") + "/") if base_url else None
    catalog = URIRef((base or "urn:partage:") + "catalog")
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Literal(title, lang="fr")))
    g.add((catalog, DCTERMS.description, Literal(f"Jeux de données ouverts publiés par {publisher} avec Partage.", lang="fr")))
    g.add((catalog, DCTERMS.publisher, _agent(g, URIRef(f"{catalog}#publisher"), publisher)))
    g.add((catalog, DCTERMS.language, URIRef(EU + "language/FRA")))
    if datasets:
        g.add((catalog, DCTERMS.modified, Literal(max(d.info.created_at for d in datasets).isoformat(), datatype=XSD.dateTime)))
    for d in sorted(datasets, key=lambda d: d.entry.id):
        _dataset(g, catalog, d, base)
    return g


def _dataset(g: Graph, catalog: URIRef, d: DcatDataset, base: str | None) -> None:
    ds = d.entry.dataset
    uri = URIRef((base or "urn:partage:") + f"datasets/{quote(ds.id)}")
    g.add((catalog, DCAT.dataset, uri))
    g.add((uri, RDF.type, DCAT.Dataset))
    g.add((uri, DCTERMS.identifier, Literal(ds.id)))
    g.add((uri, DCTERMS.title, Literal(ds.title, lang="fr")))
    g.add((uri, DCTERMS.description, Literal(ds.description or ds.title, lang="fr")))
    for kw in ds.keywords:
        g.add((uri, DCAT.keyword, Literal(kw, lang="fr")))
    if ds.publisher:
        g.add((uri, DCTERMS.publisher, _agent(g, URIRef(f"{uri}#publisher"), ds.publisher)))
        contact = URIRef(f"{uri}#contact")
        g.add((contact, RDF.type, VCARD.Organization))
        g.add((contact, VCARD.fn, Literal(ds.publisher)))
        g.add((uri, DCAT.contactPoint, contact))
    g.add((uri, DCTERMS.modified, Literal(d.info.created_at.isoformat(), datatype=XSD.dateTime)))
    g.add((uri, OWL.versionInfo, Literal(d.info.version)))
    g.add((uri, DCTERMS.accrualPeriodicity, URIRef(EU + "frequency/" + FREQUENCIES[frequency(ds.schedule)])))
    g.add((uri, DCTERMS.accessRights, URIRef(EU + "access-right/PUBLIC")))
    conforms = schema_uri(d.info, base)
    if conforms:
        standard = URIRef(conforms)
        g.add((standard, RDF.type, DCTERMS.Standard))
        g.add((uri, DCTERMS.conformsTo, standard))
    lic = license_descriptor(ds.license)
    lic_uri = URIRef(lic["path"]) if "path" in lic else None
    for f in d.files:
        dist = URIRef(f"{uri}/{f.role}")
        g.add((uri, DCAT.distribution, dist))
        g.add((dist, RDF.type, DCAT.Distribution))
        name = published_name(ds.id, f)  # the datapackage target's layout
        url = URIRef(base + f"{quote(ds.id)}/{quote(name)}") if base else URIRef(f.path.resolve().as_uri())
        g.add((dist, DCAT.accessURL, url))
        g.add((dist, DCAT.downloadURL, url))
        g.add((dist, DCTERMS.title, Literal(f.path.name)))
        g.add((dist, DCTERMS.format, URIRef(EU + "file-type/" + FILE_TYPES[f.role])))
        g.add((dist, DCAT.mediaType, URIRef("https://www.iana.org/assignments/media-types/" + f.mediatype)))
        g.add((dist, DCAT.byteSize, Literal(f.bytes, datatype=XSD.nonNegativeInteger)))
        checksum = URIRef(f"{dist}#sha256")
        g.add((checksum, RDF.type, SPDX.Checksum))
        g.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
        g.add((checksum, SPDX.checksumValue, Literal(f.sha256, datatype=XSD.hexBinary)))
        g.add((dist, SPDX.checksum, checksum))
        if lic_uri is not None:
            g.add((dist, DCTERMS.license, lic_uri))
        if f.role in ("data-csv", "data-parquet") and conforms:
            g.add((dist, DCTERMS.conformsTo, URIRef(conforms)))


def write_catalog(graph: Graph, directory: Path) -> dict[str, bool]:
    """Write catalog.ttl and catalog.jsonld; a file is rewritten only if its graph changed.

    Compared as graphs, not bytes: serializers may order triples differently
    from one process to the next, and a portal harvesting the file should not
    see a change that is not there.
    """
    directory.mkdir(parents=True, exist_ok=True)
    changed = {}
    for name, fmt in (("catalog.ttl", "turtle"), ("catalog.jsonld", "json-ld")):
        path = directory / name
        if path.exists():
            try:
                if set(Graph().parse(path, format=fmt)) == set(graph):
                    changed[name] = False
                    continue
            except Exception:  # an unreadable old file is simply replaced
                pass
        if fmt == "json-ld":
            data = graph.serialize(format=fmt, encoding="utf-8", indent=2)
        else:
            data = graph.serialize(format=fmt, encoding="utf-8")
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        changed[name] = True
    return changed
