//! Distinguished names and SIDs as text: comparing DNs the way directories do (RDN by RDN,
//! case-insensitively, escapes kept), a DN's parent, whether one DN lies below another, and a
//! binary `objectSid` in its `S-1-…` form. No I/O.

/// A DN as a comparison key: RDNs split on unescaped commas, trimmed, lower-cased.
pub fn dn_key(dn: &str) -> String {
    split(dn).join(",")
}

fn split(dn: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for ch in dn.chars() {
        if escaped {
            cur.push(ch);
            escaped = false;
        } else if ch == '\\' {
            cur.push(ch);
            escaped = true;
        } else if ch == ',' {
            out.push(norm_rdn(&cur));
            cur.clear();
        } else {
            cur.push(ch);
        }
    }
    if !cur.trim().is_empty() {
        out.push(norm_rdn(&cur));
    }
    out
}

fn norm_rdn(rdn: &str) -> String {
    match rdn.split_once('=') {
        Some((t, v)) => format!("{}={}", t.trim(), v.trim()).to_lowercase(),
        None => rdn.trim().to_lowercase(),
    }
}

/// The DN of `dn`'s parent as written (the RDNs after the first unescaped comma), or `None`
/// for a single RDN.
pub fn parent_dn(dn: &str) -> Option<String> {
    let mut escaped = false;
    for (i, ch) in dn.char_indices() {
        if escaped {
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == ',' {
            let rest = dn[i + 1..].trim();
            return (!rest.is_empty()).then(|| rest.to_string());
        }
    }
    None
}

/// `dn` equals `root` or lies below it.
pub fn is_below(dn: &str, root: &str) -> bool {
    let d = split(dn);
    let r = split(root);
    !r.is_empty() && d.len() >= r.len() && d[d.len() - r.len()..] == r[..]
}

/// A binary SID in its `S-1-5-…` text form.
pub fn sid_text(b: &[u8]) -> String {
    if b.len() < 8 {
        return String::new();
    }
    let count = b[1] as usize;
    let mut auth: u64 = 0;
    for x in &b[2..8] {
        auth = (auth << 8) | *x as u64;
    }
    let mut s = format!("S-{}-{auth}", b[0]);
    for i in 0..count {
        let o = 8 + 4 * i;
        if o + 4 > b.len() {
            break;
        }
        let v = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        s.push_str(&format!("-{v}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_rdn_by_rdn_without_case_or_spaces() {
        assert_eq!(
            dn_key("OU=Staff, DC=Contoso,DC=example"),
            "ou=staff,dc=contoso,dc=example"
        );
        assert!(is_below("CN=a,OU=Staff,DC=x", "ou=staff, dc=x"));
        assert!(!is_below("CN=a,OU=Staffing,DC=x", "OU=Staff,DC=x"));
        assert!(!is_below("CN=a", ""));
        assert_eq!(
            parent_dn("CN=a\\, b,OU=Staff,DC=x").as_deref(),
            Some("OU=Staff,DC=x")
        );
    }

    #[test]
    fn a_sid_reads_in_its_text_form() {
        // S-1-5-32-544 (BUILTIN\Administrators).
        let b = [1u8, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];
        assert_eq!(sid_text(&b), "S-1-5-32-544");
        assert_eq!(sid_text(&[1, 2]), "");
    }
}
