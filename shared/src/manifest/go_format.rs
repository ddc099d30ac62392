//! Go's `encoding/json` output and Go's RFC 3339 time round trip, emulated: what
//! distribution writes is what Go's `json.Marshal`/`json.MarshalIndent` and `time.Time`
//! produce, and a schema1 manifest built or converted here must be byte-identical to
//! distribution's (same payload, so the same digest). serde_json's layout plus Go's string
//! escaping, Go's compaction of raw JSON, and Go's reading and writing of RFC 3339 times.
//!
//! May call: serde, serde_json, std. Pure: nothing of HTTP, storage or AWS.

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use serde_json::value::RawValue;
use std::io;

/// A Go `time.Time` read from JSON and written back, as distribution round-trips history
/// times: RFC 3339 strictly (Go 1.20+), fraction cut to nanoseconds without trailing zeros,
/// a zero offset written `Z`; absent or null is Go's zero time.
pub(super) fn go_time(raw: Option<&RawValue>) -> Result<String, String> {
    const ZERO: &str = "0001-01-01T00:00:00Z";
    let Some(raw) = raw.map(RawValue::get) else {
        return Ok(ZERO.to_string());
    };
    if raw == "null" {
        return Ok(ZERO.to_string());
    }
    let text = raw
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(|| format!("{raw} is not a JSON string"))?;
    go_rfc3339(text).ok_or_else(|| format!("{raw} is not an RFC 3339 time"))
}

fn go_rfc3339(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let number = |from: usize, to: usize, min: u32, max: u32| -> Option<u32> {
        let digits = b.get(from..to)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        (min..=max).contains(&n).then_some(n)
    };
    let year = number(0, 4, 0, 9999)?;
    let month = number(5, 7, 1, 12)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    number(8, 10, 1, days)?;
    number(11, 13, 0, 23)?;
    number(14, 16, 0, 59)?;
    number(17, 19, 0, 59)?;
    if [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
        .iter()
        .any(|&(at, c)| b.get(at) != Some(&c))
    {
        return None;
    }
    let mut rest = &text[19..];

    let mut fraction = String::new();
    if rest.len() >= 2 && rest.starts_with('.') && rest.as_bytes()[1].is_ascii_digit() {
        let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
        // Go keeps nanoseconds and writes them without trailing zeros.
        let kept = rest[1..1 + digits.min(9)].trim_end_matches('0');
        if !kept.is_empty() {
            fraction = format!(".{kept}");
        }
        rest = &rest[1 + digits..];
    }

    let zone = if rest == "Z" {
        "Z"
    } else {
        let z = rest.as_bytes();
        let (sign, colon) = (z.first()?, z.get(3)?);
        let hours = rest
            .get(1..3)
            .filter(|h| h.bytes().all(|d| d.is_ascii_digit()))?;
        let minutes = rest
            .get(4..6)
            .filter(|m| m.bytes().all(|d| d.is_ascii_digit()))?;
        if rest.len() != 6 || !matches!(sign, b'+' | b'-') || *colon != b':' {
            return None;
        }
        if hours > "23" || minutes > "59" {
            return None;
        }
        if hours == "00" && minutes == "00" {
            "Z"
        } else {
            rest
        }
    };
    Some(format!("{}{fraction}{zone}", &text[..19]))
}

/// serde_json's formatting with Go's string escaping on top: `encoding/json` also escapes
/// `<`, `>`, `&`, U+2028 and U+2029. Control characters are escaped alike (`\b`, `\f`,
/// `\n`, `\r`, `\t`, else `\u00xx`, as Go 1.22+ does).
struct GoFormatter<F>(F);

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..at])?;
            writer.write_all(escaped.as_bytes())?;
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // The layout is the inner formatter's.
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn go_json<T: Serialize + ?Sized, F: Formatter>(value: &T, formatter: F) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter(formatter));
    // Only the schema1 modules' structs of strings and numbers are serialized, into memory:
    // that cannot fail (serde_json fails only on non-string map keys or a failing writer).
    value
        .serialize(&mut serializer)
        .expect("serializing plain structs to memory cannot fail");
    out
}

/// Go's `json.MarshalIndent(v, "", "   ")`.
pub(super) fn go_json_pretty<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    go_json(value, PrettyFormatter::with_indent(b"   "))
}

/// Go's `json.Marshal(v)`.
pub(super) fn go_json_compact<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    go_json(value, CompactFormatter)
}

/// A string as Go's `json.Marshal` writes it.
pub(super) fn go_string(s: &str) -> String {
    String::from_utf8_lossy(&go_json_compact(s)).into_owned()
}

/// Go's compaction of a `json.RawMessage` when marshalled: insignificant whitespace dropped,
/// and `<`, `>`, `&`, U+2028, U+2029 escaped. `raw` is valid JSON (serde_json checked it), so
/// a simple string-state scan is exact.
pub(super) fn go_compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaping) = (false, false);
    for c in raw.chars() {
        if !in_string {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                _ => out.push(c),
            }
            continue;
        }
        if escaping {
            escaping = false;
            out.push(c);
            continue;
        }
        match c {
            '\\' => {
                escaping = true;
                out.push(c);
            }
            '"' => {
                in_string = false;
                out.push(c);
            }
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_as_go_does() {
        let ok = [
            ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
            ("2026-01-01T00:00:00.000000000Z", "2026-01-01T00:00:00Z"),
            (
                "2026-01-01T00:00:00.1234567891234Z",
                "2026-01-01T00:00:00.123456789Z",
            ),
            ("2026-01-01T00:00:00.5-00:00", "2026-01-01T00:00:00.5Z"),
            ("2026-01-01T23:59:59+05:30", "2026-01-01T23:59:59+05:30"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
        ];
        for (input, output) in ok {
            assert_eq!(go_rfc3339(input).as_deref(), Some(output), "{input}");
        }
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01t00:00:00Z",
            "2026-01-01T00:00:00z",
            "2026-01-01 00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00,5Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00+0530",
            "2026-01-01T00:00:00+05:30:00",
            "+2026-01-01T00:00:00Z",
            "２０２６-01-01T00:00:00Z",
            "2026-01-01T00:00:00Zé",
        ] {
            assert_eq!(go_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_escaping() {
        assert_eq!(
            go_string("a<b>&c\u{2028}\u{2029}\"\\\n\t\u{8}\u{c}\u{1}\u{7f}é"),
            "\"a\\u003cb\\u003e\\u0026c\\u2028\\u2029\\\"\\\\\\n\\t\\b\\f\\u0001\u{7f}é\""
        );
        assert_eq!(
            go_compact(" { \"k\" : [ 1 , \"a <b> & \\\" c\" ,\n true ] } "),
            r#"{"k":[1,"a \u003cb\u003e \u0026 \" c",true]}"#
        );
    }
}
