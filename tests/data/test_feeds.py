"""XML product feeds read as catalogs: Google Merchant Center (RSS and Atom), Yandex YML,
plain product lists; compressed, in a declared encoding; broken ones named."""

from __future__ import annotations

import gzip
import re

import pytest

from prodfusion.data import read_catalog, read_table
from prodfusion.errors import DataError

GOOGLE_RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">
 <channel>
  <title>Example shop</title><link>https://shop.example</link>
  <description>All products</description>
  <item>
   <g:id>00012</g:id>
   <title>Red &amp;amp; white dress</title>
   <g:title>ignored twin</g:title>
   <link>https://shop.example/p/12</link>
   <g:image_link>https://cdn.example/12.jpg</g:image_link>
   <g:additional_image_link>https://cdn.example/12-b.jpg</g:additional_image_link>
   <g:additional_image_link>https://cdn.example/12-c.jpg</g:additional_image_link>
   <g:product_type><![CDATA[Apparel > Dresses]]></g:product_type>
   <g:price>49.00 EUR</g:price>
   <g:shipping><g:country>DE</g:country><g:price>4.95 EUR</g:price></g:shipping>
  </item>
  <item>
   <g:id>00013</g:id>
   <title>Blue shirt</title>
   <g:image_link>https://cdn.example/13.jpg</g:image_link>
   <g:product_type>Apparel &gt; Shirts</g:product_type>
  </item>
 </channel>
</rss>
"""

YML = """<?xml version="1.0" encoding="windows-1251"?>
<yml_catalog date="2026-12-01 10:00">
 <shop>
  <name>Магазин</name>
  <categories><category id="1">Обувь</category><category id="2">Сумки</category></categories>
  <offers>
   <offer id="101" available="true"><name>Кроссовки красные</name><categoryId>1</categoryId>
    <picture>https://cdn.example/101-a.jpg</picture><picture>https://cdn.example/101-b.jpg</picture>
   </offer>
   <offer id="102" available="false"><name>Сумка кожаная</name><categoryId>2</categoryId>
    <picture>https://cdn.example/102.jpg</picture>
   </offer>
  </offers>
 </shop>
</yml_catalog>
"""


def test_a_google_merchant_feed_reads_as_a_catalog(tmp_path, caplog):
    path = tmp_path / "feed.xml"
    path.write_text(GOOGLE_RSS, "utf-8")
    frame = read_table(path)
    assert frame.columns == ["id", "title", "g:title", "link", "image_link",
                             "additional_image_link", "product_type", "price",
                             "shipping.country", "shipping.price"]
    assert frame["additional_image_link"].to_list() == [
        ["https://cdn.example/12-b.jpg", "https://cdn.example/12-c.jpg"], None]
    assert frame["shipping.price"].to_list() == ["4.95 EUR", None]
    with pytest.raises(DataError, match=re.escape("'id' looks like it: --id-col id.")):
        read_catalog(path)
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(path, id_col="id", image_col="image_link", category_col="product_type")
    assert cat.ids.tolist() == ["00012", "00013"]  # text: leading zeros kept
    assert cat.titles == ["Red & white dress", "Blue shirt"]  # the feed's own &amp;amp; too
    assert cat.image_paths == ["https://cdn.example/12.jpg", "https://cdn.example/13.jpg"]
    assert cat.frame["category"].to_list() == ["Apparel > Dresses", "Apparel > Shirts"]
    # the same feed gzipped, and as Atom
    gz = tmp_path / "feed.xml.gz"
    gz.write_bytes(gzip.compress(GOOGLE_RSS.encode()))
    assert read_table(gz).equals(frame)
    atom = (GOOGLE_RSS.replace('<rss version="2.0"', '<feed xmlns="http://www.w3.org/2005/Atom"')
            .replace("</rss>", "</feed>").replace("<channel>", "").replace("</channel>", "")
            .replace("<item>", "<entry>").replace("</item>", "</entry>"))
    (tmp_path / "feed.atom").write_text(atom, "utf-8")
    assert read_table(tmp_path / "feed.atom").equals(frame)


def test_a_yml_feed_in_its_declared_encoding_reads_attributes_and_lists(tmp_path, caplog):
    path = tmp_path / "market.xml"
    path.write_bytes(YML.encode("cp1251"))
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(path, id_col="id", title_col="name", image_col="picture",
                           category_col="categoryId")
    assert cat.ids.tolist() == ["101", "102"]
    assert cat.titles == ["Кроссовки красные", "Сумка кожаная"]
    assert cat.image_paths == ["https://cdn.example/101-a.jpg", "https://cdn.example/102.jpg"]
    assert cat.frame["available"].to_list() == ["true", "false"]
    assert "column 'picture' holds lists of photos (1 products have several)" in caplog.text


def test_a_plain_product_list_and_a_single_record(tmp_path):
    path = tmp_path / "export.xml"
    path.write_text("<export><meta><generated>today</generated><by>erp</by></meta>"
                    "<products>" + "".join(
                        f"<product><sku>{i:03d}</sku><name>Item {i}</name></product>"
                        for i in range(5)) + "</products></export>", "utf-8")
    frame = read_table(path)
    assert frame.columns == ["sku", "name"] and frame["sku"].to_list()[:2] == ["000", "001"]
    # a feed of one product: still its record, not the channel around it
    one = GOOGLE_RSS.split("<item>")
    path.write_text(one[0] + "<item>" + one[1].split("</item>")[0] + "</item></channel></rss>",
                    "utf-8")
    assert read_table(path)["id"].to_list() == ["00012"]


def test_broken_and_empty_feeds_are_named(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text(GOOGLE_RSS[:700], "utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: cannot be parsed as XML (")):
        read_table(path)
    path.write_text("<rss><channel><title>nothing</title></channel></rss>", "utf-8")
    with pytest.raises(DataError, match=re.escape(f"{path}: no records found in the XML")):
        read_table(path)


def test_records_with_nested_fields_are_found_in_long_feeds(tmp_path):
    """Past the first pass's stop (1,000 of one candidate), a record's nested field — which
    repeats as often as the record, and ends first — is not taken for the record."""
    path = tmp_path / "skus.xml"
    path.write_text("<catalog>" + "".join(
        f"<sku_entry><code>{i}</code><dims><w>{i % 7}</w><h>2</h></dims></sku_entry>"
        for i in range(1500)) + "</catalog>", "utf-8")
    frame = read_table(path)
    assert frame.columns == ["code", "dims.w", "dims.h"] and frame.height == 1500


def test_html_entities_in_a_feed_are_read_as_their_characters(tmp_path, caplog):
    """Hand-made feeds carry HTML entities XML does not define (``&nbsp;``, ``&eacute;``):
    read as the characters they name, with a warning, wherever a read would cut them."""
    from prodfusion.data.feeds import _HtmlEntities

    items = "".join(f"<item><id>{i}</id><title>Caf&eacute; table&nbsp;{i} &amp; chair"
                    "</title></item>" for i in range(3000))
    path = tmp_path / "feed.xml"
    path.write_text(f"<rss><channel>{items}</channel></rss>", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        frame = read_table(path)
    assert frame.height == 3000
    assert frame["title"][2999] == "Café table\xa02999 & chair"
    assert "HTML entities XML does not define (undefined entity: line 1" in caplog.text
    # every read size: an entity cut at the end of a read is read on to its end
    import io

    raw = b"<t>&eacute;&nbsp;&amp;&bogus;x</t>"
    for n in range(1, len(raw) + 1):
        src, out = _HtmlEntities(io.BytesIO(raw)), b""
        while chunk := src.read(n):
            out += chunk
        assert out == b"<t>&#233;&#160;&amp;&bogus;x</t>", n
    path.write_text("<rss><item><id>1</id><t>&bogus;</t></item></rss>", "utf-8")
    with pytest.raises(DataError, match="cannot be parsed as XML \\(undefined entity"):
        read_table(path)


def test_a_large_feed_shows_how_much_is_read(tmp_path, monkeypatch, capsys):
    """From PROGRESS_FROM bytes on, the read says how far it is (plain lines in a log)."""
    monkeypatch.setattr("prodfusion.data.feeds.PROGRESS_FROM", 0)
    path = tmp_path / "big.xml"
    path.write_text("<rss>" + "".join(f"<item><id>{i}</id><title>{'x' * 80}</title></item>"
                                      for i in range(40_000)) + "</rss>", "utf-8")
    assert read_table(path).height == 40_000
    err = capsys.readouterr().err
    assert "reading big.xml: 4/4 MiB (100.0%)" in err


def test_an_encoding_given_for_a_feed_is_said_to_be_unused(tmp_path, caplog):
    path = tmp_path / "market.xml"
    path.write_bytes(YML.encode("cp1251"))
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert read_table(path, encoding="cp1252")["name"][0] == "Кроссовки красные"
    assert "encoding='cp1252' (--encoding) is not used: an XML file names its own" in caplog.text


def test_a_feed_read_in_chunks_equals_one_read_whole(tmp_path, monkeypatch):
    """Records are turned into a table chunk by chunk (memory); fields that first appear, or
    first repeat, in a later chunk come out as when the feed is read in one piece."""
    items = []
    for i in range(23):
        extra = f"<color>c{i}</color>" if i >= 11 else ""
        pics = "".join(f"<picture>p{i}-{k}</picture>" for k in range(2 if i == 17 else 1))
        items.append(f"<offer id='{i}'><name>n{i}</name>{pics}{extra}</offer>")
    path = tmp_path / "yml.xml"
    path.write_text("<shop><offers>" + "".join(items) + "</offers></shop>", "utf-8")
    whole = read_table(path)
    monkeypatch.setattr("prodfusion.data.feeds._CHUNK", 5)
    chunked = read_table(path)
    assert chunked.equals(whole) and chunked.columns == ["id", "name", "picture", "color"]
    assert chunked["picture"][17].to_list() == ["p17-0", "p17-1"]
    assert chunked["picture"][0].to_list() == ["p0-0"] and chunked["color"][10] is None
