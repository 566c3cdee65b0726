//! Xiaomi version codes: `OS2.0.205.0.VNCCNXM` (HyperOS) and `V14.0.5.0.TKHCNXM` (MIUI).
//!
//! The dotted numbers are the release; the seven letters after them are the
//! Android letter, a two-letter device code, a two-letter region and a
//! two-letter carrier (`XM`: not carrier-locked).

use serde::Serialize;

/// A decoded version code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionCode {
    /// The code as found.
    pub code: String,
    /// `HyperOS` or `MIUI`.
    pub os: &'static str,
    /// Dotted release, e.g. `2.0.205.0`.
    pub release: String,
    /// Android version the letter stands for, e.g. `15`.
    pub android: Option<String>,
    /// Two-letter device code, e.g. `NC`.
    pub device_code: String,
    /// Two-letter region, e.g. `CN`.
    pub region: String,
    /// Human name of the region, when known.
    pub region_name: Option<&'static str>,
    /// Two-letter carrier code (`XM` for open market).
    pub carrier: String,
}

fn android_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'N' => "7",
        'O' => "8",
        'P' => "9",
        'Q' => "10",
        'R' => "11",
        'S' => "12",
        'T' => "13",
        'U' => "14",
        'V' => "15",
        'W' => "16",
        'X' => "17",
        _ => return None,
    })
}

fn region_name(r: &str) -> Option<&'static str> {
    Some(match r {
        "CN" => "China",
        "MI" => "Global",
        "EU" => "Europe (EEA)",
        "IN" => "India",
        "RU" => "Russia",
        "TR" => "Turkey",
        "ID" => "Indonesia",
        "TW" => "Taiwan",
        "JP" => "Japan",
        "KR" => "South Korea",
        "LM" => "Latin America",
        "TH" => "Thailand",
        "VN" => "Vietnam",
        "MY" => "Malaysia",
        "PH" => "Philippines",
        "SA" => "Saudi Arabia",
        "EG" => "Egypt",
        "CL" => "Chile",
        "GL" => "Global (carrier)",
        _ => return None,
    })
}

impl VersionCode {
    /// Decodes a version code; `None` when `s` is not one.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let (os, rest) = if let Some(r) = s.strip_prefix("OS") {
            ("HyperOS", r)
        } else if let Some(r) = s.strip_prefix('V') {
            ("MIUI", r)
        } else {
            return None;
        };
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 5 {
            return None;
        }
        if !parts[..4]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let tail = parts[4];
        if tail.len() != 7 || !tail.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let letter = tail.chars().next()?;
        Some(VersionCode {
            code: s.to_string(),
            os,
            release: parts[..4].join("."),
            android: android_letter(letter).map(str::to_string),
            device_code: tail[1..3].to_string(),
            region: tail[3..5].to_string(),
            region_name: region_name(&tail[3..5]),
            carrier: tail[5..7].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperos_and_miui() {
        let v = VersionCode::parse("OS2.0.205.0.VNCCNXM").unwrap();
        assert_eq!(v.os, "HyperOS");
        assert_eq!(v.release, "2.0.205.0");
        assert_eq!(v.android.as_deref(), Some("15"));
        assert_eq!(v.device_code, "NC");
        assert_eq!(v.region, "CN");
        assert_eq!(v.carrier, "XM");
        let m = VersionCode::parse("V14.0.5.0.TKHMIXM").unwrap();
        assert_eq!(m.os, "MIUI");
        assert_eq!(m.android.as_deref(), Some("13"));
        assert_eq!(m.region_name, Some("Global"));
        let u = VersionCode::parse("OS1.0.24.0.UMCCNXM").unwrap();
        assert_eq!(u.android.as_deref(), Some("14"));
        assert_eq!(u.device_code, "MC");
    }

    #[test]
    fn rejects_non_codes() {
        for s in [
            "",
            "OS",
            "OS2.0.205.0",
            "OS2.0.205.0.vnccnxm",
            "OS2.0.x.0.VNCCNXM",
            "OS2.0.205.0.VNCCNX",
            "X2.0.205.0.VNCCNXM",
            "OS2.0.205.0.1.VNCCNXM",
        ] {
            assert!(VersionCode::parse(s).is_none(), "{s}");
        }
    }
}
