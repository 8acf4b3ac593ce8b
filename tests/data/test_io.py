"""read_catalog / read_table: formats, leading zeros, image paths and every located error."""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

import polars as pl
import pytest

from prodfusion.data import read_catalog, read_table
from prodfusion.errors import DataError, ParameterError

ROWS = [
    {"product_id": "0111565001", "title": "  Red   leather\tbag ", "image": "img/a.jpg",
     "category": "bags", "brand": "007"},
    {"product_id": "000123", "title": "Blue hat", "image": "", "category": "", "brand": "08"},
    {"product_id": "42", "title": "Kırmızı deri kadın çanta", "image": "/abs/c.jpg",
     "category": "bags", "brand": "x"},
]


def write(path: Path, rows: list[dict], fmt: str) -> Path:
    frame = pl.DataFrame(rows, schema={k: pl.Utf8 for k in rows[0]})
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "tsv":
        frame.write_csv(path, separator="\t")
    elif fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


@pytest.mark.parametrize("fmt,name", [("csv", "c.csv"), ("tsv", "c.tsv"), ("parquet", "c.parquet"),
                                      ("jsonl", "c.jsonl"), ("jsonl", "c.ndjson"), ("tsv", "c.txt")])
def test_leading_zeros_survive_every_format(tmp_path, fmt, name):
    cat = read_catalog(write(tmp_path / name, ROWS, fmt))
    assert cat.ids.tolist() == ["0111565001", "000123", "42"]
    assert cat.frame["brand"].to_list() == ["007", "08", "x"]  # other columns as text too
    assert cat.titles == ["Red leather bag", "Blue hat", "Kırmızı deri kadın çanta"]
    assert cat.categories == ["bags", None, "bags"]
    assert cat.image_paths == [str(tmp_path.resolve() / "img/a.jpg"), None, "/abs/c.jpg"]
    assert cat.frame.columns == ["product_id", "title", "image", "category", "brand"]


def test_fmt_overrides_extension(tmp_path):
    path = write(tmp_path / "catalog.data", ROWS, "jsonl")
    assert read_catalog(path, fmt="jsonl").ids[1] == "000123"
    with pytest.raises(ParameterError, match=re.escape(
            "The 'fmt' parameter of read_catalog() must be one of 'csv', 'tsv', 'parquet', "
            "'jsonl', 'xml' or None. Got 'xlsx' instead.")):
        read_catalog(path, fmt="xlsx")


def test_unknown_extension(tmp_path):
    path = tmp_path / "catalog.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=re.escape(
            f"{path}: a spreadsheet (.xlsx) is not read. Save the sheet as CSV (UTF-8)")):
        read_catalog(path)
    path = tmp_path / "catalog.dat"
    path.write_bytes(b"PK")
    with pytest.raises(DataError, match=re.escape(f"{path}: unknown file format '.dat'. Use a "
                                                  ".csv, .tsv, .txt, .parquet, .jsonl, .ndjson or "
                                                  ".xml file (text ones also compressed: .csv.gz, "
                                                  ".bz2, .xz), or name the format with fmt=")):
        read_catalog(path)


def test_separator_sniffed_or_given(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product_id;title;price\n007;red, shoe;1,5\n", "utf-8")
    cat = read_catalog(path)
    assert cat.record(0) == {"product_id": "007", "title": "red, shoe", "price": "1,5"}
    path.write_text("product_id|title\n007|shoe\n", "utf-8")
    assert read_catalog(path, sep="|").ids.tolist() == ["007"]


def test_renamed_columns_and_hm_style_template(tmp_path):
    path = tmp_path / "articles.csv"
    path.write_text("article_id,prod_name,product_type_name,product_code\n"
                    "0111565001,20 den 1p Stockings,Underwear Tights,0111565\n"
                    "0111586001,Shape Up 30 den 1p Tights,Leggings/Tights,0111586\n", "utf-8")
    cat = read_catalog(path, id_col="article_id", title_col="prod_name",
                       category_col="product_type_name", image_root=tmp_path / "images",
                       image_template="{product_id}.jpg")
    assert cat.ids.tolist() == ["0111565001", "0111586001"]
    assert cat.image_paths == [str((tmp_path / "images").resolve() / "0111565001.jpg"),
                               str((tmp_path / "images").resolve() / "0111586001.jpg")]
    assert cat.categories == ["Underwear Tights", "Leggings/Tights"]
    assert cat.frame.columns == ["product_id", "title", "image", "category", "product_code"]
    # original column names work in the template too
    cat2 = read_catalog(path, id_col="article_id", title_col="prod_name",
                        image_template="img/{product_code}-{article_id}.png")
    assert cat2.image_paths[0] == str(tmp_path.resolve() / "img/0111565-0111565001.png")


def test_template_errors(tmp_path):
    path = write(tmp_path / "c.csv", ROWS, "csv")
    with pytest.raises(DataError, match=re.escape(
            f"{path}: both an image column ('image') and image_template='{{product_id}}.jpg' "
            "were given. Pass image_col=None")):
        read_catalog(path, image_template="{product_id}.jpg")
    with pytest.raises(DataError, match=re.escape(
            f"{path}: image_template '{{sku}}.jpg' names column 'sku', which the catalog lacks "
            "(found columns: 'product_id', 'title', 'category', 'brand')")):
        read_catalog(path, image_col=None, image_template="{sku}.jpg")
    with pytest.raises(DataError, match=re.escape(  # the file's names, not the renamed ones
            "names column 'nope', which the catalog lacks (found columns: 'product_id', "
            "'name', 'category', 'brand')")):
        read_catalog(write(tmp_path / "d.csv", [{("name" if k == "title" else k): v
                                                 for k, v in r.items()} for r in ROWS], "csv"),
                     title_col="name", image_col=None, image_template="{nope}.jpg")
    with pytest.raises(ParameterError, match="The 'image_template' parameter of read_catalog"):
        read_catalog(path, image_col=None, image_template="no-fields.jpg")
    cat = read_catalog(path, image_col=None, image_template="{brand}/{product_id}.jpg",
                       image_root="/pics")
    assert cat.image_paths[1] == "/pics/08/000123.jpg"


def test_missing_required_column_names_found_columns_and_option(tmp_path):
    path = write(tmp_path / "c.csv", ROWS, "csv")
    with pytest.raises(DataError, match=re.escape(
            f"{path}: no column 'article_id' (found columns: 'product_id', 'title', 'image', "
            "'category', 'brand'). Name the right column with id_col= (--id-col on the command "
            "line).")):
        read_catalog(path, id_col="article_id")
    with pytest.raises(DataError, match=re.escape("with title_col= (--title-col on the command")):
        read_catalog(path, title_col="name")


def test_optional_columns_default_missing_is_fine_explicit_missing_is_not(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product_id,title\n1,a\n", "utf-8")
    cat = read_catalog(path)
    assert cat.categories is None and cat.image_paths == [None]
    with pytest.raises(DataError, match=re.escape("no column 'product_type' (found columns: "
                                                  "'product_id', 'title'). Name the right column "
                                                  "with category_col= (--category-col")):
        read_catalog(path, category_col="product_type")
    with pytest.raises(DataError, match=re.escape("with image_col= (--image-col")):
        read_catalog(path, image_col="photo")
    with pytest.raises(DataError, match=re.escape("with group_col= (--group-col")):
        read_catalog(path, group_col="product_code")


def test_image_urls_are_kept_as_urls_and_named(tmp_path, caplog):
    """A column of image URLs is not joined to the catalog's folder; a line says that web and
    object-storage photos are fetched when encoded, and a warning names the URLs that are
    not (ftp://)."""
    path = tmp_path / "c.csv"
    path.write_text("product_id,title,image\n1,a,https://cdn.example/1.jpg\n2,b,x.jpg\n"
                    "3,c, s3://bucket/3.png\n4,d,HTTP://cdn.example/4.jpg\n"
                    "5,e,ftp://files.example/5.jpg\n", "utf-8")
    with caplog.at_level("INFO", logger="prodfusion.data"):
        cat = read_catalog(path)
    assert cat.image_paths == ["https://cdn.example/1.jpg", str(tmp_path.resolve() / "x.jpg"),
                               "s3://bucket/3.png", "HTTP://cdn.example/4.jpg",
                               "ftp://files.example/5.jpg"]
    infos = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith(f"{path}: 3 of 5 image paths are URLs (first: row 1, "
                            "'https://cdn.example/1.jpg'); the photos are fetched") for m in infos)
    assert warnings == [
        f"{path}: 1 of 5 image paths are URLs prodfusion does not download (first: row 5, "
        "'ftp://files.example/5.jpg'; it fetches http://, https://, file://, s3://, gs://, "
        "gcs://, abfs://, abfss://, hdfs://, viewfs://), so those products get no image "
        "vector. Copy the photos to a local folder and point the image column (or "
        "--image-root with --image-template '{product_id}.jpg') at the files."]


@pytest.mark.skipif(os.sep != "/", reason="Windows reads its own separators")
def test_relative_image_paths_with_windows_separators_are_read_with_slashes(tmp_path, caplog):
    """A catalog saved on Windows (``img\\001.jpg``) finds its photos on Linux too, with a
    warning; absolute Windows paths, URLs and paths with ``/`` are left as they are."""
    path = tmp_path / "c.csv"
    path.write_text("product_id,title,image\n1,a,img\\sub\\1.jpg\n2,b,img/2.jpg\n"
                    "3,c,C:\\photos\\3.jpg\n4,d,\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(path)
    root = tmp_path.resolve()
    assert cat.image_paths == [str(root / "img" / "sub" / "1.jpg"), str(root / "img" / "2.jpg"),
                               "C:\\photos\\3.jpg", None]
    assert (f"{path}: 1 of 4 image paths are relative paths with Windows separators (first: "
            "row 1, 'img\\\\sub\\\\1.jpg'); read with '/' ('img/sub/1.jpg').") in caplog.text
    caplog.clear()
    path.write_text("product_id,title,image\n1,a,img/1.jpg\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        read_catalog(path)
    assert "Windows" not in caplog.text


def test_several_photos_per_product_use_the_first(tmp_path, caplog):
    """The paper's image is a product's first photo: a Parquet or JSON Lines list of photos,
    or a cell naming several (``a.jpg|b.jpg``, ``a.jpg, b.jpg``), gives the first, with a
    warning; a file name with a comma stays whole; a list where one value belongs (the title)
    is refused, naming the column."""
    import json

    root = tmp_path.resolve()
    pl.DataFrame({"product_id": ["1", "2", "3"], "title": ["a", "b", "c"],
                  "image": [["x/1.jpg", "x/1b.jpg"], ["x/2.jpg"], None]}).write_parquet(
        tmp_path / "c.parquet")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(tmp_path / "c.parquet")
    assert cat.image_paths == [str(root / "x/1.jpg"), str(root / "x/2.jpg"), None]
    assert (f"{tmp_path / 'c.parquet'}: column 'image' holds lists of photos (1 products have "
            "several): the first of each is used") in caplog.text
    (tmp_path / "c.jsonl").write_text(json.dumps(
        {"product_id": "1", "title": "a", "image": ["y.png", "z.png"]}) + "\n", "utf-8")
    assert read_catalog(tmp_path / "c.jsonl").image_paths == [str(root / "y.png")]
    caplog.clear()
    (tmp_path / "c.csv").write_text(
        'product_id,title,image\n1,a,"x/1.jpg|x/1b.jpg"\n2,b,"x/2.JPG, x/2b.png"\n'
        '3,c,"shoes, red.jpg"\n4,d,https://cdn.example/4.jpg;https://cdn.example/4b.jpg\n',
        "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(tmp_path / "c.csv")
    assert cat.image_paths == [str(root / "x/1.jpg"), str(root / "x/2.JPG"),
                               str(root / "shoes, red.jpg"), "https://cdn.example/4.jpg"]
    assert (f"{tmp_path / 'c.csv'}: 3 of 4 image cells name several photos (column 'image'; "
            "first: row 1, 'x/1.jpg|x/1b.jpg'); the first of each is used ('x/1.jpg')."
            ) in caplog.text
    pl.DataFrame({"product_id": ["1"], "title": [["a", "b"]]}).write_parquet(
        tmp_path / "t.parquet")
    with pytest.raises(DataError, match=re.escape(
            "column 'title' (the title column) holds lists; a product has one title.")):
        read_catalog(tmp_path / "t.parquet")


def test_group_column_and_ignored_image_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product_id,title,image,code\n1,a,x.jpg,G1\n2,b,,G1\n3,c,y.jpg,\n", "utf-8")
    cat = read_catalog(path, group_col="code", image_col=None)
    assert cat.groups == ["G1", "G1", None]
    assert "image" not in cat.frame.columns and cat.image_paths == [None] * 3
    cat = read_catalog(path, image_col="", category_col="", group_col="")  # "" = none (CLI)
    assert cat.frame.columns == ["product_id", "title", "code"]
    with pytest.raises(ParameterError, match=re.escape(
            "The 'id_col' parameter of read_catalog() must be a column name (str). Got None "
            "instead.")):
        read_catalog(path, id_col=None)


def test_chosen_column_keeps_the_standard_one_under_another_name(tmp_path):
    # issue 13: --category-col subcategory on a file that also has 'category' works
    path = tmp_path / "c.csv"
    path.write_text("product_id,title,long_name,category,subcategory\n"
                    "1,a,A long,Shoes,Boots\n2,b,B long,Shoes,Sneakers\n", "utf-8")
    cat = read_catalog(path, title_col="long_name", category_col="subcategory")
    assert cat.titles == ["A long", "B long"] and cat.categories == ["Boots", "Sneakers"]
    assert cat.frame["title (file)"].to_list() == ["a", "b"]
    assert cat.frame["category (file)"].to_list() == ["Shoes", "Shoes"]
    path.write_text("product_id,title,long_name,title (file)\n1,a,A,x\n", "utf-8")
    with pytest.raises(DataError, match=re.escape("and 'title (file)' (where it would be kept) "
                                                  "exists too. Rename one of them.")):
        read_catalog(path, title_col="long_name")


def test_duplicate_ids_name_both_file_rows(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product_id,title\n007,a\n8,b\n9,c\n007,d\n8,e\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 4: duplicate product id '007' (first seen at row 1, column 'product_id'; "
            "4 rows hold a repeated id). Ids must be unique: remove or rename the duplicates, "
            "or keep each id's first row with duplicate_ids='first' (--duplicate-ids first)")):
        read_catalog(path)
    # "7" and "007" are different ids
    path.write_text("product_id,title\n007,a\n7,b\n", "utf-8")
    assert len(read_catalog(path)) == 2
    with pytest.raises(ParameterError, match="'duplicate_ids' parameter of read_catalog"):
        read_catalog(path, duplicate_ids="last")


SHOPIFY = """Handle,Title,Body (HTML),Vendor,Type,Option1 Name,Option1 Value,Variant SKU,Image Src,Image Position
red-dress,Red Summer Dress,<p>Cotton</p>,Acme,Dresses,Size,S,RD-S,https://cdn.example/red-1.jpg,1
red-dress,,,,,,M,RD-M,https://cdn.example/red-2.jpg,2
red-dress,,,,,,L,RD-L,,
blue-shirt,Blue Oxford Shirt &amp; Tie,<p>Classic</p>,Acme,Shirts,Size,M,BS-M,https://cdn.example/blue.jpg,1
blue-shirt,,,,,,L,BS-L,,
green-scarf,,<p>Warm</p>,Acme,Scarves,Title,Default Title,GS-1,img\\scarf.jpg,1
"""


def test_a_shop_export_with_variant_rows_keeps_each_products_first_row(tmp_path, caplog):
    """Shopify's product CSV: a product's variants and further photos on rows of their own,
    its fields on its first row. ``duplicate_ids="first"`` keeps that row; later messages
    still name the file's rows."""
    path = tmp_path / "products_export.csv"
    path.write_text(SHOPIFY, "utf-8")
    opts = dict(id_col="Handle", title_col="Title", image_col="Image Src", category_col="Type")
    with pytest.raises(DataError, match=re.escape("row 2: duplicate product id 'red-dress'")):
        read_catalog(path, **opts)
    with caplog.at_level("INFO", logger="prodfusion.data"):
        cat = read_catalog(path, duplicate_ids="first", **opts)
    assert cat.ids.tolist() == ["red-dress", "blue-shirt", "green-scarf"]
    assert cat.titles == ["Red Summer Dress", "Blue Oxford Shirt & Tie", None]
    assert cat.image_paths == ["https://cdn.example/red-1.jpg", "https://cdn.example/blue.jpg",
                               str(tmp_path.resolve() / "img" / "scarf.jpg")]
    assert cat.frame["category"].to_list() == ["Dresses", "Shirts", "Scarves"]
    assert cat.frame["Variant SKU"].to_list() == ["RD-S", "BS-M", "GS-1"]
    text = [r.getMessage() for r in caplog.records]
    assert (f"{path}: 3 rows repeat a product id seen on an earlier row (column 'Handle'; first: "
            "row 2, 'red-dress', first seen at row 1); each id's first row is kept "
            "(--duplicate-ids first): 3 products.") in text
    # the rows named after the drop are the file's: 4 (the title), 6 (the empty title and
    # the Windows path), 1 (the first URL)
    assert any("first: row 4, 'Blue Oxford Shirt &amp; Tie' read as" in m for m in text)
    assert any("have an empty title (column 'Title'; first: row 6, product 'green-scarf')" in m
               for m in text)
    assert any("relative paths with Windows separators (first: row 6," in m for m in text)
    assert any("2 of 3 image paths are URLs (first: row 1," in m for m in text)


def test_empty_ids_and_titles(tmp_path, caplog):
    path = tmp_path / "c.csv"
    path.write_text("sku,name\n1,a\n2,   \n, c\n4,\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 3: empty product id (column 'sku'; 1 row(s) in all). Every product needs "
            "a unique id: fill it in or remove the row.")):
        read_catalog(path, id_col="sku", title_col="name")
    # an empty title loses nothing: the product stays, without a title, with a warning
    path.write_text("sku,name\n1,a\n2,   \n3,c\n4,\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(path, id_col="sku", title_col="name")
    assert cat.ids.tolist() == ["1", "2", "3", "4"] and cat.titles == ["a", None, "c", None]
    assert (f"{path}: 2 of 4 products have an empty title (column 'name'; first: row 2, "
            "product '2'); they are kept without one (no text or lexical vector in a model") in caplog.text


def test_html_character_references_in_titles_are_decoded_with_a_warning(tmp_path, caplog):
    # feeds exported from web pages carry "&amp;": the encoders, lists and pages should see "&"
    path = tmp_path / "c.csv"
    path.write_text("product_id,title\n1,Shirt &amp; tie\n2,5&#39;&#39; &quot;slim&quot;  fit\n"
                    "3,AT&T; R&D &Tx;\n4,&nbsp;\n5,Tom &amp;amp; Jerry\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(path)
    # decoded once; whitespace collapsed again; a title of only "&nbsp;" is an empty title
    assert cat.titles == ["Shirt & tie", "5'' \"slim\" fit", "AT&T; R&D &Tx;", None, "Tom &amp; Jerry"]
    assert (f"{path}: 4 of 5 titles hold HTML character references (column 'title'; first: row "
            "1, 'Shirt &amp; tie' read as 'Shirt & tie'); they are decoded") in caplog.text
    assert "1 of 5 products have an empty title" in caplog.text
    caplog.clear()
    path.write_text("product_id,title\n1,Shirt & tie\n2,R&D\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert read_catalog(path).titles == ["Shirt & tie", "R&D"]
    assert "HTML" not in caplog.text


def test_non_utf8_bytes_name_line_row_and_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"product_id,title,brand\n1,ok,x\n2,caf\xe9 cr\xe8me,y\n")
    with pytest.raises(DataError, match=re.escape(
            f"{path} line 3 (data row 2): bytes b'\\xe9' are not valid UTF-8, column 'title'. "
            ) + r".*'2,café crème,y'.* save it as UTF-8"):
        read_catalog(path)  # the line as Windows' Western code page reads it, among others
    # a quoted field spanning two lines: line 4 is data row 2
    path.write_bytes(b'product_id,title,brand\n1,"two\nlines",x\n2,ok,\xff\n')
    with pytest.raises(DataError, match=re.escape(
            f"{path} line 4 (data row 2): bytes b'\\xff' are not valid UTF-8, column 'brand'.")):
        read_catalog(path)
    jpath = tmp_path / "c.jsonl"
    jpath.write_bytes(b'{"product_id": "1", "title": "a"}\n{"product_id": "2", "title": "\xff"}\n')
    with pytest.raises(DataError, match=re.escape(f"{jpath} line 2 (row 2): bytes b'\\xff' are not "
                                                  "valid UTF-8")):
        read_catalog(jpath)


def test_compressed_text_tables_read_as_their_plain_files(tmp_path):
    """``.csv.gz``, ``.tsv.bz2``, ``.jsonl.xz``: the same frame as the plain file; a damaged
    or mislabelled file, bad UTF-8 and a ragged row inside are named as in a plain file; a
    folder of gzipped daily logs is read as the plain one."""
    import bz2
    import gzip
    import lzma

    from prodfusion.data.interactions import read_interactions

    plain = {"csv": "product_id,title\n007,Red shoe\n8,Blue hat\n",
             "tsv": "product_id\ttitle\n007\tRed shoe\n8\tBlue hat\n",
             "jsonl": '{"product_id": "007", "title": "Red shoe"}\n'
                      '{"product_id": "8", "title": "Blue hat"}\n'}
    for kind, text in plain.items():
        (tmp_path / f"c.{kind}").write_text(text, "utf-8")
        want = read_table(tmp_path / f"c.{kind}")
        for ext, opener in ((".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)):
            path = tmp_path / f"c.{kind}{ext}"
            with opener(path, "wb") as fh:
                fh.write(text.encode())
            assert read_table(path).equals(want), path
            assert read_catalog(path).ids.tolist() == ["007", "8"]
    bad = tmp_path / "cut.csv.gz"
    bad.write_bytes((tmp_path / "c.csv.gz").read_bytes()[:-12])
    with pytest.raises(DataError, match=re.escape(
            f"{bad}: cannot be decompressed as .gz (Compressed file ended before the "
            "end-of-stream marker was reached). Check that the file is whole")):
        read_table(bad)
    plain_named_gz = tmp_path / "plain.csv.gz"
    plain_named_gz.write_text(plain["csv"], "utf-8")
    with pytest.raises(DataError, match=re.escape(f"{plain_named_gz}: cannot be decompressed "
                                                  "as .gz (Not a gzipped file")):
        read_table(plain_named_gz)
    latin = tmp_path / "latin.csv.gz"
    with gzip.open(latin, "wb") as fh:
        fh.write(b"product_id,title\n1,ok\n2,caf\xe9\n")
    with pytest.raises(DataError, match=re.escape(
            f"{latin} line 3 (data row 2): bytes b'\\xe9' are not valid UTF-8, column 'title'.")):
        read_table(latin)
    ragged = tmp_path / "ragged.csv.bz2"
    with bz2.open(ragged, "wb") as fh:
        fh.write(b"product_id,title\n1,ok\n2,a,b\n")
    with pytest.raises(DataError, match=re.escape(
            f"{ragged}: cannot be parsed as delimited text: data row 2 has 3 fields but the "
            "header has 2")):
        read_table(ragged)
    days = tmp_path / "days"
    days.mkdir()
    log = "session_id,product_id\ns1,1\ns1,2\ns2,3\n"
    (tmp_path / "one.csv").write_text(log, "utf-8")
    for day in ("d1", "d2"):
        with gzip.open(days / f"{day}.csv.gz", "wb") as fh:
            fh.write(log.encode())
    both = read_interactions(days)
    assert both["product_id"].to_list() == ["1", "2", "3"] * 2
    assert both.height == 2 * read_interactions(tmp_path / "one.csv").height


def test_a_catalog_in_another_encoding_reads_with_encoding(tmp_path):
    """A catalog saved on Windows (cp1252) reads with ``encoding="cp1252"`` as its UTF-8 twin
    (compressed too); without it the refusal says how; an unknown encoding and a byte the
    encoding does not define are named."""
    import gzip

    from prodfusion.data.interactions import read_interactions

    text = "Artikelnummer;Bezeichnung\r\n000001;Laufschuh Größe 42 – weiß\r\n000002;Bär\r\n"
    utf8 = tmp_path / "utf8.csv"
    utf8.write_text(text, "utf-8")
    win = tmp_path / "win.csv"
    win.write_bytes(text.encode("cp1252"))
    want = read_catalog(utf8, id_col="Artikelnummer", title_col="Bezeichnung")
    got = read_catalog(win, id_col="Artikelnummer", title_col="Bezeichnung", encoding="cp1252")
    assert got.titles == want.titles == ["Laufschuh Größe 42 – weiß", "Bär"]
    assert got.ids.tolist() == ["000001", "000002"]
    with gzip.open(tmp_path / "win.csv.gz", "wb") as fh:
        fh.write(text.encode("cp1252"))
    assert read_catalog(tmp_path / "win.csv.gz", id_col="Artikelnummer",
                        title_col="Bezeichnung", encoding="cp1252").titles == want.titles
    assert read_table(utf8, encoding="utf-8").equals(read_table(utf8))
    with pytest.raises(DataError, match=re.escape(
            f"{win} line 2 (data row 1): bytes b'\\xf6' are not valid UTF-8, column "
            "'Bezeichnung'. The file reads as cp1252 (Western European), that line as '000001;Laufschuh Größe "
            "42 – weiß': read it as it is with --encoding cp1252 (encoding= in Python), or save "
            "it as UTF-8 (e.g. `iconv -f cp1252 -t utf-8 in.csv > out.csv`)")):
        read_catalog(win, id_col="Artikelnummer", title_col="Bezeichnung")
    log = tmp_path / "log.csv"
    log.write_bytes("session_id,product_id\ns1,Bär\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"are not valid UTF-8.*'s1,Bär'.*--interactions-encoding"):
        read_interactions(log)  # the log's own option
    assert read_interactions(log, encoding="cp1252")["product_id"].to_list() == ["Bär"]
    with pytest.raises(ParameterError, match="The 'encoding' parameter of read_catalog"):
        read_catalog(win, id_col="Artikelnummer", title_col="Bezeichnung", encoding="klingon")
    with pytest.raises(DataError, match=re.escape(
            f"{win} line 2: bytes b'\\xf6' are not ascii text (ordinal not in range(128)). "
            "Name the file's real encoding with --encoding (encoding=)")):
        read_catalog(win, id_col="Artikelnummer", title_col="Bezeichnung", encoding="ascii")


def test_a_catalog_saved_by_japanese_excel_is_named_cp932_and_reads_with_it(tmp_path, caplog):
    """A Shift_JIS catalog (Japanese Excel's CSV, cp932): the refusal names cp932 and shows
    the line as it reads in it (before: "read it with --encoding cp1252", which then
    failed on the next byte); cp1252 named instead: the same hint; latin-1 (which reads any
    byte): read, with a warning showing the garbled line; cp932: the titles as written."""
    titles = [f"ＡＣＭＥ　ランニングシューズ 赤 {i}ｃｍ" if i % 2 else f"ｿﾗ ﾘｭｯｸｻｯｸ 黒 {i}"
              for i in range(30)]
    utf8 = "product_id,title\r\n" + "".join(f"JP{i:03d},{t}\r\n" for i, t in enumerate(titles))
    sjis = tmp_path / "shohin.csv"
    sjis.write_bytes(utf8.encode("cp932"))
    with pytest.raises(DataError, match=re.escape(
            f"{sjis} line 2 (data row 1): bytes b'\\xbf' are not valid UTF-8, column 'title'. "
            "The file reads as cp932 (Japanese), that line as 'JP000,ｿﾗ ﾘｭｯｸｻｯｸ 黒 0': read "
            "it as it is with --encoding cp932 (encoding= in Python), or save it as UTF-8 (e.g. "
            "`iconv -f cp932 -t utf-8 in.csv > out.csv`)")):
        read_catalog(sjis)
    with pytest.raises(DataError, match=re.escape(
            "are not cp1252 text (character maps to <undefined>). Name the file's real encoding "
            "with --encoding (encoding=) (it reads as cp932: Japanese), or save it as UTF-8.")):
        read_catalog(sjis, encoding="cp1252")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        garbled = read_catalog(sjis, encoding="latin-1")
    assert garbled.titles[0] == "JP000,ｿﾗ ﾘｭｯｸｻｯｸ 黒 0".encode("cp932").decode("latin-1")[6:]
    assert re.search(r"read as latin-1 \(--encoding\), but it reads as cp932 \(Japanese\): "
                     r"the line '.*' would be 'JP000,ｿﾗ ﾘｭｯｸｻｯｸ 黒 0'\. If the titles look "
                     r"garbled, read it with --encoding cp932\.", caplog.text), caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        # (the ideographic space, like every run of spaces, read as one ASCII space)
        assert read_catalog(sjis, encoding="cp932").titles == [" ".join(t.split())
                                                               for t in titles]
    assert "reads as" not in caplog.text
    header = tmp_path / "header.csv"  # the header holds the first byte that is not UTF-8
    header.write_bytes(("商品コード,商品名\r\n" + "".join(
        f"JP{i:03d},{t}\r\n" for i, t in enumerate(titles))).encode("cp932"))
    with pytest.raises(DataError, match=re.escape(
            f"{header} line 1 (the header): bytes b'\\x8f' are not valid UTF-8. The file reads "
            "as cp932 (Japanese), that line as '商品コード,商品名'")):
        read_catalog(header, id_col="商品コード", title_col="商品名")


def test_empty_lines_at_the_end_are_not_products_and_between_rows_are_skipped(tmp_path,
                                                                             caplog):
    """Empty lines an editor or a spreadsheet leaves at the end of a CSV are not rows; one
    between the catalog's rows is skipped with a warning, as a click log's are, and later
    messages keep the file's row numbers (empty lines counted)."""
    from prodfusion.data.interactions import read_interactions

    path = tmp_path / "c.csv"
    path.write_text("product_id,title\r\n1,a\r\n2,b\r\n\r\n\r\n", "utf-8")
    assert read_catalog(path).ids.tolist() == ["1", "2"]
    path.write_text("product_id,title\n1,a\n\n2,b\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        assert read_catalog(path).ids.tolist() == ["1", "2"]
    assert f"{path}: 1 empty line(s) skipped (first: data row 2)." in caplog.text
    path.write_text("product_id,title\n1,a\n\n2,b\n\n,c\n", "utf-8")  # an id missing
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 5: empty product id (column 'product_id'; 1 row(s) in all). Every "
            "product needs a unique id: fill it in or remove the row.")):
        read_catalog(path)
    path.write_text("product_id,title\n1,a\n\n2,b\n\n1,c\n3,d\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{path} row 5: duplicate product id '1' (first seen at row 1,")):
        read_catalog(path)
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):  # the rows kept keep theirs
        cat = read_catalog(path, duplicate_ids="first")
    assert cat.ids.tolist() == ["1", "2", "3"]
    assert "(column 'product_id'; first: row 5, '1', first seen at row 1)" in caplog.text
    path.write_text("product_id,title\n1,a\n\n2,b\n\n3,\n", "utf-8")
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        read_catalog(path)
    assert "have an empty title (column 'title'; first: row 5, product '3')" in caplog.text
    log = tmp_path / "log.csv"
    log.write_text("session_id,product_id,t\ns,1,5\n\ns,2,x\n,,\nt,1,7\n\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        with pytest.raises(DataError, match=re.escape(f"{log} row 3: cannot read time 'x'")):
            read_interactions(log, time_col="t")  # the file's row, empty lines counted
    assert f"{log}: 2 empty line(s) skipped (first: data row 2)." in caplog.text
    assert read_interactions(log)["row"].to_list() == [1, 3, 5]


def test_a_repeated_header_column_is_named(tmp_path, caplog):
    path = tmp_path / "c.csv"
    path.write_text("product_id;title;Bild;Bild\n1;a;x.jpg;y.jpg\n", "utf-8")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        cat = read_catalog(path, image_col="Bild")
    assert cat.image_paths == [str(tmp_path.resolve() / "x.jpg")]  # the first
    assert (f"{path}: the header repeats column(s) ['Bild']; the first of each is read under "
            "its name, the others as ['Bild_duplicated_0'].") in caplog.text


def test_missing_empty_folder_and_broken_files(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.csv'}: file does not exist")):
        read_catalog(tmp_path / "nope.csv")
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    # a folder is read as a table's parts (a warehouse's export); one without any is named
    with pytest.raises(DataError, match=re.escape(f"{folder}: folder holds no table file")):
        read_catalog(folder)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path}: folder holds no table file")):
        read_catalog(tmp_path)  # no extension: still named a folder, not an unknown format
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'typo'}: file does not exist")):
        read_catalog(tmp_path / "typo")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=re.escape(f"{empty}: file is empty (no header row).")):
        read_catalog(empty)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("product_id,title\n1,a\n2,b,extra\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            f"{ragged}: cannot be parsed as delimited text: data row 2 has 3 fields but the header "
            "has 2 (separator ','). Quote fields that contain the separator")):
        read_catalog(ragged)
    bad_pq = tmp_path / "c.parquet"
    bad_pq.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=re.escape(f"{bad_pq}: cannot be read as Parquet (")):
        read_catalog(bad_pq)
    bad_json = tmp_path / "c.jsonl"
    bad_json.write_text('{"product_id": "1"\n', "utf-8")
    with pytest.raises(DataError, match=re.escape(f"{bad_json}: cannot be parsed as JSON Lines")):
        read_catalog(bad_json)


def test_read_table_keeps_text(tmp_path):
    path = tmp_path / "t.parquet"
    pl.DataFrame({"id": ["001"], "n": [3], "x": [1.5]}).write_parquet(path)
    assert read_table(path).row(0) == ("001", "3", "1.5")
    assert read_table(path).dtypes == [pl.Utf8] * 3


def test_hm_articles(shared_data):
    hm = shared_data / "hm"
    cat = read_catalog(hm / "articles.csv", id_col="article_id", title_col="prod_name",
                       category_col="product_type_name", image_root=hm / "images",
                       image_template="{product_id}.jpg")
    assert len(cat) == 11800
    assert cat.ids[0] == "0111565001" and all(len(i) == 10 for i in cat.ids)
    assert cat.image_paths[0] == str((hm / "images").resolve() / "0111565001.jpg")
    assert Path(cat.image_paths[0]).is_file()
    assert len(set(cat.categories)) == 107
    assert "detail_desc" in cat.frame.columns


def test_columns_that_look_like_the_ones_asked_for_are_named(tmp_path, caplog):
    """A missing column's refusal names the file's column that looks like it (same name up
    to case and punctuation, or a name exports commonly give it); an optional column left at
    its default and absent is said, where the file has a likely one."""
    from tests.data.test_io import SHOPIFY

    path = tmp_path / "products_export.csv"
    path.write_text(SHOPIFY, "utf-8")
    with pytest.raises(DataError, match=re.escape(
            "Name the right column with id_col= (--id-col on the command line). 'Handle' "
            "looks like it: --id-col Handle.")):
        read_catalog(path)
    with pytest.raises(DataError, match=re.escape("'Title' looks like it: --title-col Title.")):
        read_catalog(path, id_col="Handle", title_col="TITLE")
    with caplog.at_level("WARNING", logger="prodfusion.data"):
        read_catalog(path, id_col="Handle", title_col="Title", duplicate_ids="first")
    assert (f"{path}: no 'image' column, so the products have no photos; 'Image Src' may be "
            "one: --image-col 'Image Src' (or --image-col '' to say there is none).") in caplog.text
    assert "'Type' may be one: --category-col Type (or --category-col '' to say" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="prodfusion.data"):  # said there is none: silent
        read_catalog(path, id_col="Handle", title_col="Title", duplicate_ids="first",
                     image_col=None, category_col="")
    assert "may be one" not in caplog.text
    # nothing alike: the refusal as before
    path.write_text("a,b\n1,x\n", "utf-8")
    with pytest.raises(DataError, match=r"on the command line\)\.$"):
        read_catalog(path)


def test_japanese_chinese_and_korean_export_columns_are_named_as_likely(tmp_path, caplog):
    """A Japanese shop's export (商品コード, 商品名, カテゴリ, 画像), a Chinese one's and a
    Korean one's: each missing column's refusal names the file's likely one."""
    from prodfusion.data.interactions import read_interactions

    for header, wanted in (("商品コード,商品名,カテゴリ,画像", ("商品コード", "商品名", "カテゴリ", "画像")),
                           ("商品编号,商品名称,类目,图片", ("商品编号", "商品名称", "类目", "图片")),
                           ("상품코드,상품명,카테고리,이미지", ("상품코드", "상품명", "카테고리", "이미지"))):
        path = tmp_path / "c.csv"
        path.write_text(f"{header}\n1,x,y,\n", "utf-8")
        with pytest.raises(DataError, match=re.escape(
                f"'{wanted[0]}' looks like it: --id-col '{wanted[0]}'.")):
            read_catalog(path)
        with pytest.raises(DataError, match=re.escape(
                f"'{wanted[1]}' looks like it: --title-col '{wanted[1]}'.")):
            read_catalog(path, id_col=wanted[0])
        caplog.clear()
        with caplog.at_level("WARNING", logger="prodfusion.data"):
            read_catalog(path, id_col=wanted[0], title_col=wanted[1])
        assert f"'{wanted[2]}' may be one: --category-col '{wanted[2]}'" in caplog.text
        assert f"'{wanted[3]}' may be one: --image-col '{wanted[3]}'" in caplog.text
    log = tmp_path / "clicks.csv"
    log.write_text("セッションID,商品コード,日時\nv1,1,2023/01/02 10:00:00\n", "utf-8")
    with pytest.raises(DataError, match=re.escape(
            "'セッションID' looks like it: --session-cols 'セッションID'.")):
        read_interactions(log)
    with pytest.raises(DataError, match=re.escape("'商品コード' looks like it: --item-col '商品コード'.")):
        read_interactions(log, session_cols="セッションID")


def test_an_image_root_url_joins_the_catalogs_paths(tmp_path):
    """``image_root`` may be a URL (a shop's media folder, a CDN): relative paths and those
    beginning with '/' (Magento's export) join it, URLs stay, a template builds on it."""
    path = tmp_path / "c.csv"
    path.write_text("sku,name,base_image\nMB01,Bag,/m/b/mb01-blue-0.jpg\nMB02,Belt,"
                    "img\\mb02.jpg\nMB03,Cap,https://other.example/mb03.jpg\nMB04,Hat,\n",
                    "utf-8")
    cat = read_catalog(path, id_col="sku", title_col="name", image_col="base_image",
                       image_root="https://shop.example/media/catalog/product/")
    assert cat.image_paths == ["https://shop.example/media/catalog/product/m/b/mb01-blue-0.jpg",
                               "https://shop.example/media/catalog/product/img/mb02.jpg",
                               "https://other.example/mb03.jpg", None]
    cat = read_catalog(path, id_col="sku", title_col="name", image_col=None,
                       image_root="https://cdn.example/p", image_template="{product_id}.jpg")
    assert cat.image_paths[0] == "https://cdn.example/p/MB01.jpg"


def test_aliases_gather_every_rows_other_name_for_the_logs_and_lookups(tmp_path, caplog):
    """``alias_col``: a product's other names over all its rows (Shopify's variant SKUs, the
    repeats ``duplicate_ids="first"`` drops included) — logs naming products by them are read
    as those products, and an unknown id is answered with the product its alias names."""
    from prodfusion.data import clean_sessions
    from prodfusion.errors import UnknownProductError

    path = tmp_path / "products_export.csv"
    path.write_text(SHOPIFY, "utf-8")
    cat = read_catalog(path, id_col="Handle", title_col="Title", image_col=None,
                       category_col="Type", duplicate_ids="first", alias_col="Variant SKU")
    assert cat.frame["aliases"].to_list() == [["RD-S", "RD-M", "RD-L"], ["BS-M", "BS-L"],
                                              ["GS-1"]]
    assert cat.frame["Variant SKU"].to_list() == ["RD-S", "BS-M", "GS-1"]  # the first row's
    assert "2 titles, 3 categories, 6 aliases; also Body (HTML)" in repr(cat)
    orders = pl.DataFrame({"session": ["#1", "#1", "#2", "#2", "#2"],
                           "product_id": ["RD-L", "BS-L", "GS-1", "red-dress", "ZZ"]})
    with caplog.at_level("INFO", logger="prodfusion.data"):
        s = clean_sessions(orders, cat)
    assert list(s) == [["red-dress", "blue-shirt"], ["green-scarf", "red-dress"]]
    assert "3 interaction rows name a product by an alias" in caplog.text
    assert s.report.n_unknown_rows == 1
    with pytest.raises(UnknownProductError, match="Did you mean 'red-dress'"):
        cat.row_of("RD-M")
    with pytest.raises(DataError, match=re.escape("no column 'SKU'")):
        read_catalog(path, id_col="Handle", title_col="Title", duplicate_ids="first",
                     alias_col="SKU")


def test_a_file_column_named_aliases_is_kept_under_another_name(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("product_id,title,aliases,ean\n1,a,x,400\n2,b,y,401\n", "utf-8")
    cat = read_catalog(path)
    assert "aliases" not in cat.frame.columns and cat.frame["aliases (file)"].to_list() == \
        ["x", "y"]
    assert cat.alias_map() == {}
    cat = read_catalog(path, alias_col="aliases")
    assert cat.alias_map() == {"x": "1", "y": "2"}
    assert read_catalog(path, alias_col="ean").alias_map() == {"400": "1", "401": "2"}


def test_a_folder_of_parts_is_read_as_one_table(tmp_path, caplog):
    """A warehouse's or Spark's export (``part-00000.parquet``, …, ``_SUCCESS``, ``.crc``
    checksums): its parts in name order as one catalog; mixed formats, other columns and a
    broken part are named."""
    rows = [(f"{i:04d}", f"Product {i}", f"img/{i}.jpg") for i in range(10)]
    frame = pl.DataFrame(rows, schema=["product_id", "title", "image"], orient="row")
    parts = tmp_path / "catalog"
    parts.mkdir()
    frame[6:].write_parquet(parts / "part-00001-x.snappy.parquet")
    frame[:6].write_parquet(parts / "part-00000-x.snappy.parquet")
    (parts / "_SUCCESS").write_bytes(b"")
    (parts / ".part-00000-x.snappy.parquet.crc").write_bytes(b"crc")
    with caplog.at_level("INFO", logger="prodfusion.data"):
        cat = read_catalog(parts)
    assert cat.ids.tolist() == [r[0] for r in rows]
    assert cat.frame["title"].to_list() == [r[1] for r in rows]
    assert cat.image_paths[0] == str(tmp_path.resolve() / "img" / "0.jpg")  # the folder's parent
    assert f"{parts}: 2 parts read as one table (10 rows;" in caplog.text
    # CSV parts, gzipped, as Spark writes them
    csv_parts = tmp_path / "csv_parts"
    csv_parts.mkdir()
    for i, part in enumerate((frame[:4], frame[4:])):
        (csv_parts / f"part-{i:05d}.csv.gz").write_bytes(gzip.compress(part.write_csv().encode()))
    assert read_catalog(csv_parts).ids.tolist() == cat.ids.tolist()
    (csv_parts / "part-00002.parquet").write_bytes((parts / "part-00000-x.snappy.parquet")
                                                   .read_bytes())
    with pytest.raises(DataError, match=re.escape(f"{csv_parts}: folder mixes formats (csv, "
                                                  "parquet")):
        read_catalog(csv_parts)
    (csv_parts / "part-00002.parquet").unlink()
    (csv_parts / "part-00002.csv.gz").write_bytes(gzip.compress(b"id,name\n1,x\n"))
    with pytest.raises(DataError, match=re.escape(
            f"{csv_parts}: part-00002.csv.gz has the columns ['id', 'name'] where "
            "part-00000.csv.gz has ['product_id', 'title', 'image']")):
        read_catalog(csv_parts)
    (csv_parts / "part-00002.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=re.escape(f"{csv_parts / 'part-00002.csv.gz'}: cannot "
                                                  "be decompressed")):
        read_catalog(csv_parts)
