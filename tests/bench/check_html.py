#!/usr/bin/env python3
"""check_html.py PAGE.html [TEXT...] — check that a `graft report --html` page is well-formed
(it is written as XHTML, so an XML parser reads it), self-contained (no element, attribute or
style that loads anything: no src/href other than '#...', no <link>/<script>/<img>/<iframe>,
no url() or @import) and carries the two SVG charts with bars, and that every TEXT appears."""
import re
import sys
import xml.etree.ElementTree as ET

problems = []
path = sys.argv[1]
raw = open(path, encoding="utf-8").read()
try:
    root = ET.fromstring(raw.replace("<!DOCTYPE html>", "", 1))
except ET.ParseError as e:
    print(f"check_html: {path}: not well-formed: {e}")
    sys.exit(1)


def local(tag):
    return tag.rsplit("}", 1)[-1]


if local(root.tag) != "html":
    problems.append(f"root element is {root.tag}")
tags = [local(e.tag) for e in root.iter()]
for need in ("head", "title", "body", "style"):
    if need not in tags:
        problems.append(f"no <{need}>")
for bad in ("link", "script", "img", "iframe", "object", "embed", "image", "use", "base"):
    if bad in tags:
        problems.append(f"has <{bad}>: a page that loads something")
for e in root.iter():
    for k, v in e.attrib.items():
        if local(k) in ("src", "href", "srcset", "data", "action", "background") and not v.startswith("#"):
            problems.append(f"<{local(e.tag)}> {local(k)}={v!r} loads a resource")
styles = " ".join(e.text or "" for e in root.iter() if local(e.tag) == "style")
styles += " ".join(e.attrib.get("style", "") for e in root.iter())
if re.search(r"url\s*\(|@import", styles):
    problems.append("CSS loads a resource (url() or @import)")
# outside namespace declarations, no address may appear at all
text = re.sub(r'xmlns(:\w+)?="[^"]*"', "", raw)
if re.search(r"(https?|ftp):|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I):
    problems.append("an address appears in the page")
svgs = [e for e in root.iter() if local(e.tag) == "svg"]
if len(svgs) < 2:
    problems.append(f"{len(svgs)} inline SVG charts, expected 2")
for i, s in enumerate(svgs):
    rects = [e for e in s.iter() if local(e.tag) == "rect" and float(e.attrib.get("width", 0)) > 0]
    if not rects:
        problems.append(f"SVG chart {i + 1} has no bars")
alltext = "".join(root.itertext())
for t in sys.argv[2:]:
    if t not in alltext:
        problems.append(f"text {t!r} not on the page")
for p in problems:
    print("check_html:", p)
print(f"check_html: {path}: {len(svgs)} charts, {len(problems)} problems")
sys.exit(1 if problems else 0)
