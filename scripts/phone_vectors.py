#!/usr/bin/env python3
"""Writes the phone-number test vectors that Herald's parser is checked against.

The oracle is Google's libphonenumber, through its maintained Python port `phonenumbers`, pinned
to the metadata version the `phonenumber` crate in Cargo.lock carries (9.0.33), so that both sides
read the same numbering plans and a difference is a difference in reading, not in data.

How it was run (from the repository's root):

    pip install phonenumbers==9.0.33
    python3 scripts/phone_vectors.py > crates/herald-core/tests/data/phone_vectors.tsv

For every region libphonenumber knows, and every non-geographic calling code, it takes the example
number of each number type and writes it in the shapes people and spreadsheets produce: the
international format with spaces, dashes, dots or brackets, bare E.164, with the international
dialling prefix of another region (`00`, `011`, ...), the national format with its trunk prefix,
the bare national number, and the same numbers read with the default region set to another
country. It also writes a few near-misses (a digit dropped or added) so that "invalid" is tested
as hard as "valid". Each line is `input<TAB>default region (or empty)<TAB>expected`, where
expected is the E.164 form libphonenumber reads, or `invalid` when it refuses the text
(`NumberParseException`) or the number is not valid (`is_valid_number` is false).

The tests read the file (crates/herald-core/tests/phone_vectors.rs); they need no Python.
"""

import sys

import phonenumbers
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T

TYPES = [
    T.FIXED_LINE,
    T.MOBILE,
    T.TOLL_FREE,
    T.PREMIUM_RATE,
    T.SHARED_COST,
    T.VOIP,
    T.PERSONAL_NUMBER,
    T.PAGER,
    T.UAN,
    T.VOICEMAIL,
]

# Regions a number is also read "from": a default region that is not the number's own.
OTHER_REGIONS = ["US", "DE", "GB", "BR", "CN", "IN", "FR", "AU"]


def expected(text, region):
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        return "invalid"
    if not phonenumbers.is_valid_number(number):
        return "invalid"
    return phonenumbers.format_number(number, F.E164)


def shapes(number, own_region):
    """(input, default region) pairs for one example number."""
    intl = phonenumbers.format_number(number, F.INTERNATIONAL)
    e164 = phonenumbers.format_number(number, F.E164)
    out = [
        (intl, ""),
        (e164, ""),
        (intl.replace(" ", "-"), ""),
        (intl.replace(" ", "."), ""),
    ]
    parts = intl.split(" ")
    if len(parts) >= 3:
        # +49 (1512) 3456789
        out.append((" ".join([parts[0], "(" + parts[1] + ")"] + parts[2:]), ""))
    for other in OTHER_REGIONS:
        if other != own_region:
            out.append((intl, other))
    # E.164 read with a default region of another numbering plan than +1 and another than +49.
    out.append((e164, "US" if own_region != "US" else "DE"))
    # Dialled from abroad with that region's international prefix (00, 011, 0011, ...).
    for origin in ["DE", "US", "AU", "BR"]:
        if origin == own_region:
            continue
        dialled = phonenumbers.format_out_of_country_calling_number(number, origin)
        out.append((dialled, origin))
    if own_region and own_region != "001":
        national = phonenumbers.format_number(number, F.NATIONAL)
        nsn = phonenumbers.national_significant_number(number)
        out.append((national, own_region))
        out.append((nsn, own_region))
        out.append((national.replace(" ", ""), own_region))
    return out


FULLWIDTH = str.maketrans("+0123456789", "\uff0b\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")


def unusual(number):
    """Shapes outside the fast path's alphabet: they take the general path."""
    intl = phonenumbers.format_number(number, F.INTERNATIONAL)
    return [
        (intl + " ext. 123", ""),
        (phonenumbers.format_number(number, F.RFC3966), ""),
        (intl.translate(FULLWIDTH), ""),
        ("Tel: " + intl, "GB"),
    ]


def near_misses(number, own_region):
    e164 = phonenumbers.format_number(number, F.E164)
    out = [(e164[:-1], ""), (e164 + "5", "")]
    if own_region and own_region != "001":
        nsn = phonenumbers.national_significant_number(number)
        out.append((nsn[:-1], own_region))
    return out


def main():
    seen = set()
    rows = []

    def add(text, region):
        key = (text, region)
        if key in seen:
            return
        seen.add(key)
        rows.append((text, region, expected(text, region)))

    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is None:
                continue
            for text, default in shapes(number, region) + unusual(number) + near_misses(number, region):
                add(text, default)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is None:
            continue
        for text, default in shapes(number, "001") + unusual(number) + near_misses(number, "001"):
            add(text, default)
    # The numbers of the bug report, uploaded with the default region US, and a few written by hand.
    for text, default in [
        ("+49 1512 3456789", "US"),
        ("+86 139 1234 5678", "US"),
        ("+55 11 91234 5678", "US"),
        ("+39 391 231 2312", "US"),
        ("(415) 555-2671", "US"),
        ("1 (415) 555-2671", "US"),
        ("+1 415 555 2671", "DE"),
        ("0049 30 901820", "DE"),
        ("+0049 30 901820", "DE"),
        ("030 901820", "DE"),
        ("49 30 901820", "DE"),
        ("1-800-FLOWERS", "US"),
        ("+44 (0) 20 7946 0958", ""),
        ("020 7946 0958", "GB"),
        ("+1 415 555 2671 x 12", ""),
        ("tel:555-2671;phone-context=+1-415", ""),
        ("12", "US"),
        ("+12", ""),
        ("", "US"),
    ]:
        add(text, default)

    out = sys.stdout
    out.write(f"# generated by scripts/phone_vectors.py from phonenumbers {phonenumbers.__version__}\n")
    out.write("# input\tdefault region\texpected E.164 or invalid\n")
    for text, region, want in rows:
        assert "\t" not in text and "\n" not in text
        out.write(f"{text}\t{region}\t{want}\n")


if __name__ == "__main__":
    main()
