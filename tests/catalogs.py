"""Small catalogs written by tests: the two shared layouts, with generated images and defects."""
from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

FASHION_HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
COLOURS = {"Red": (200, 30, 30), "Blue": (30, 30, 200), "Green": (30, 160, 30), "Black": (10, 10, 10)}
TYPES = [("Apparel", "Topwear", "Tshirts"), ("Footwear", "Shoes", "Casual Shoes"), ("Accessories", "Bags", "Handbags")]


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (60, 80), seed: int = 0) -> None:
    rnd = random.Random(seed)
    img = Image.new("RGB", size, colour)
    for _ in range(20):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        img.putpixel((x, y), (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    img.save(path, "JPEG", quality=90)


def fashion_rows(n: int, start: int = 1000) -> list[list[str]]:
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % len(COLOURS)]
        master, sub, article = TYPES[i % len(TYPES)]
        gender = "Men" if i % 2 else "Women"
        rows.append([str(start + i), gender, master, sub, article, colour, "Summer", "2012", "Casual", f"Brand{i % 5} {gender} {colour} {article}"])
    return rows


def write_fashion(folder: Path, rows: list[list[str]], extra_lines: list[str] = (), images: bool = True) -> Path:
    """styles.csv (unquoted, as published) and images/<id>.jpg for each row."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = [FASHION_HEADER] + [",".join(r) for r in rows] + list(extra_lines)
    (folder / "styles.csv").write_text("\n".join(lines) + "\n")
    if images:
        for r in rows:
            p = folder / "images" / f"{r[0]}.jpg"
            if not p.exists():
                write_image(p, COLOURS.get(r[5], (128, 128, 128)), seed=int(r[0]))
    return folder


def defective_fashion(folder: Path) -> Path:
    """A Fashion catalog with every defect the shared file has, and a few it could have."""
    rows = fashion_rows(12)
    extra = [
        "2001,Men,Apparel,Topwear,Shirts,White,Summer,2011,Casual,Myntra Men's Yes, its all about me White T-shirt",  # comma in title
        "2002,Men,Apparel,Topwear",  # too few fields
        "2003,Women,Apparel,Topwear,Tops,NA,,NA,Casual,Plain Top",  # NA and empty fields
        ",Men,Apparel,Topwear,Shirts,Red,Summer,2011,Casual,No id",  # empty id
        "2004,Men,Apparel,Topwear,Shirts,Red,Summer,twenty,Casual,Bad year",  # non-numeric year
        "1003,Men,Apparel,Topwear,Shirts,Red,Summer,2013,Casual,Duplicate of 1003, later line wins",
        "2005,Women,Apparel,Topwear,Tops,Red,Summer,2012,Casual,",  # empty title
    ]
    write_fashion(folder, rows, extra)
    for pid, colour in (("2001", (255, 255, 255)), ("2003", (90, 90, 90)), ("2005", (200, 30, 30))):
        write_image(folder / "images" / f"{pid}.jpg", colour)
    (folder / "images" / "1000.jpg").unlink()  # missing image
    (folder / "images" / "1001.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")  # corrupt
    return folder


def write_myntra(path: Path, rows: list[dict]) -> Path:
    import csv

    cols = ["ProductID", "ProductName", "ProductBrand", "Gender", "Price (INR)", "NumImages", "Description", "PrimaryColor"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for r in rows:
            w.writerow([r.get(c, "") for c in cols])
    return path
