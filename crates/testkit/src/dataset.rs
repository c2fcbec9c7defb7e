//! Sample directory content for both Samba AD and OpenLDAP, from one deterministic generator.
//!
//! A [`Dataset`] is directory-neutral: OUs, users and groups with the attributes dirbridge
//! syncs (givenName, sn, mail, mobile, telephoneNumber, country `c`), some disabled users,
//! nested groups, non-ASCII names, names whose DN needs escaping (`,` `+` `"` `\` `<` `>` `;`
//! `=`, a leading `#` or space, a trailing space) and one protected administrator
//! (`adminCount=1` in AD). [`Dataset::write_ad_ldif`] and [`Dataset::write_openldap_ldif`]
//! render it for each directory; the fixtures load it offline (Samba: straight into `sam.ldb`;
//! OpenLDAP: `slapadd`) and cache the result keyed by [`DatasetSpec`].

use std::collections::HashSet;
use std::io::{self, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md4::Md4;
use sha1::{Digest as _, Sha1};

/// What to generate. The same spec always yields the same dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DatasetSpec {
    /// Number of users (at least the dozen special cases are always included).
    pub users: usize,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
}

impl DatasetSpec {
    pub fn new(users: usize, seed: u64) -> DatasetSpec {
        DatasetSpec { users, seed }
    }

    /// The dataset the normal test suite loads: every special case, a few hundred users.
    pub fn small() -> DatasetSpec {
        DatasetSpec::new(300, 1)
    }

    /// The cache key part for this spec.
    pub fn key(&self) -> String {
        format!("users={};seed={}", self.users, self.seed)
    }
}

/// An organizational unit below the synced root.
#[derive(Clone, Debug)]
pub struct Ou {
    pub name: String,
    /// Index of the parent OU in [`Dataset::ous`]; `None` for a child of the synced root.
    pub parent: Option<usize>,
}

/// A person.
#[derive(Clone, Debug)]
pub struct User {
    /// Index into [`Dataset::ous`].
    pub ou: usize,
    /// The RDN value (`CN=` in AD, `cn=` in OpenLDAP), unescaped.
    pub cn: String,
    /// `sAMAccountName` in AD, `uid` in OpenLDAP. ASCII, at most 20 characters.
    pub login: String,
    pub given_name: String,
    pub surname: String,
    pub display_name: String,
    pub mail: String,
    pub mobile: Option<String>,
    pub telephone: Option<String>,
    /// ISO 3166-1 alpha-2 country (`c`); `None` for users without one.
    pub country: Option<String>,
    pub enabled: bool,
    /// A protected administrator (AD: Domain Admins member with `adminCount=1`).
    pub admin: bool,
    /// The initial password (test data).
    pub password: String,
}

/// A member of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    User(usize),
    Group(usize),
}

/// A group; member groups always come earlier in [`Dataset::groups`].
#[derive(Clone, Debug)]
pub struct Group {
    pub ou: usize,
    pub cn: String,
    /// `sAMAccountName` in AD.
    pub login: String,
    pub members: Vec<Member>,
}

/// The generated content.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub spec: DatasetSpec,
    pub ous: Vec<Ou>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

/// SplitMix64: tiny, and stable forever (unlike a library RNG whose stream may change).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const GIVEN: &[&str] = &[
    "Ola", "Kari", "Anna", "Lars", "Ingrid", "Erik", "Maria", "Jonas", "Sofia", "Noah", "Emma",
    "Liam", "Olivia", "Lucas", "Mia", "Ahmed", "Fatima", "Wei", "Yuki", "Priya", "Åse", "Jürgen",
    "Zoë", "Björn", "Søren", "Chloé", "José", "Łukasz", "Ñuño", "Dmitrij", "Siobhán", "Ævar",
    "Kwame", "Amara", "Mateo", "Hana", "Oskar", "Elin", "Tobias", "Nora",
];
const SURNAMES: &[&str] = &[
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Smith",
    "Jones",
    "Brown",
    "Garcia",
    "Müller",
    "Schmidt",
    "Ødegård",
    "Åberg",
    "Lindqvist",
    "Nakamura",
    "Kowalski",
    "Dubois",
    "Rossi",
    "O'Brien",
    "Nguyen",
    "Fernández",
    "Øverland",
    "Ivanova",
    "Mensah",
    "Haugen",
    "Berg",
    "Dahl",
    "Moen",
    "Lie",
];
const COUNTRIES: &[&str] = &[
    "NO", "NO", "NO", "SE", "DK", "DE", "GB", "US", "US", "FR", "JP",
];

/// The fixed OUs below the synced root.
const OUS: &[(&str, Option<usize>)] = &[
    ("Engineering", None),  // 0
    ("Sales", None),        // 1
    ("Support", None),      // 2
    ("Finance", None),      // 3
    ("Åsgårdstrand", None), // 4: non-ASCII
    ("R&D, Labs", None),    // 5: comma in an OU name
    ("Platform", Some(0)),  // 6: nested OU
    ("Leavers", None),      // 7: mostly disabled accounts
    ("Groups", None),       // 8
];
const GROUPS_OU: usize = 8;
const LEAVERS_OU: usize = 7;
const PEOPLE_OUS: &[usize] = &[0, 1, 2, 3, 4, 5, 6];

/// Users whose names exercise DN escaping and non-ASCII handling; always generated first.
/// (cn, given, surname, ou, enabled, admin)
const SPECIAL: &[(&str, &str, &str, usize, bool, bool)] = &[
    ("Ada Admin", "Ada", "Admin", 0, true, true),
    ("Berg, Ola", "Ola", "Berg", 1, true, false),
    ("Ann+Marie Olsen", "Ann+Marie", "Olsen", 2, true, false),
    (
        "Robert \"Bobby\" Tables",
        "Robert",
        "Tables",
        3,
        true,
        false,
    ),
    ("Back\\Slash Hansen", "Back", "Hansen", 5, true, false),
    ("#Hashtag Jensen", "Hashtag", "Jensen", 6, true, false),
    ("Trailing Space ", "Trailing", "Space", 1, true, false),
    (" Leading Space", "Leading", "Space", 2, true, false),
    (
        "Less<Than> Semi;Colon=Eq",
        "Less",
        "Semicolon",
        0,
        true,
        false,
    ),
    ("Åse Ødegård", "Åse", "Ødegård", 4, true, false),
    ("Jürgen Müller", "Jürgen", "Müller", 4, true, false),
    ("李 小龙", "小龙", "李", 5, true, false),
    ("Zoë Ñúñez-O'Brien", "Zoë", "Ñúñez-O'Brien", 6, true, false),
    ("Dora Disabled", "Dora", "Disabled", 7, false, false),
];

impl Dataset {
    /// Generates the dataset for `spec`.
    pub fn generate(spec: DatasetSpec) -> Dataset {
        let mut rng = Rng(spec.seed ^ 0xD1B5_4A32_D192_ED03);
        let ous: Vec<Ou> = OUS
            .iter()
            .map(|(name, parent)| Ou {
                name: (*name).to_owned(),
                parent: *parent,
            })
            .collect();
        let mut users = Vec::with_capacity(spec.users.max(SPECIAL.len()));
        let mut taken: HashSet<(usize, String)> = HashSet::new();
        let count = spec.users.max(SPECIAL.len());
        for i in 0..count {
            let (cn, given, surname, ou, enabled, admin) = if let Some(s) = SPECIAL.get(i) {
                (
                    s.0.to_owned(),
                    s.1.to_owned(),
                    s.2.to_owned(),
                    s.3,
                    s.4,
                    s.5,
                )
            } else {
                let given = rng.pick(GIVEN).to_owned();
                let surname = rng.pick(SURNAMES).to_owned();
                let leaver = rng.chance(4);
                let ou = if leaver {
                    LEAVERS_OU
                } else {
                    PEOPLE_OUS[rng.below(PEOPLE_OUS.len())]
                };
                // Leavers are disabled; so is the odd active-OU account.
                let enabled = !leaver && !rng.chance(2);
                let mut cn = format!("{given} {surname}");
                let mut n = 2;
                while taken.contains(&(ou, cn.to_lowercase())) {
                    cn = format!("{given} {surname} {n}");
                    n += 1;
                }
                (cn, given, surname, ou, enabled, false)
            };
            taken.insert((ou, cn.to_lowercase()));
            let login = login_for(&given, &surname, i);
            let country = if rng.chance(90) {
                Some(rng.pick(COUNTRIES).to_owned())
            } else {
                None
            };
            let mobile = rng.chance(80).then(|| {
                format!(
                    "+47 9{:02} {:02} {:03}",
                    rng.below(100),
                    rng.below(100),
                    rng.below(1000)
                )
            });
            let telephone = rng
                .chance(60)
                .then(|| format!("+1 555 01{:02}", rng.below(100)));
            let password = format!("Db!{:08x}x{i}", rng.next() as u32);
            users.push(User {
                ou,
                display_name: cn.trim().to_owned(),
                mail: format!("{login}@dirbridge.test"),
                cn,
                login,
                given_name: given,
                surname,
                mobile,
                telephone,
                country,
                enabled,
                admin,
                password,
            });
        }

        let mut groups: Vec<Group> = Vec::new();
        // One team per people OU with up to 50 of its users.
        for &ou in PEOPLE_OUS {
            let members: Vec<Member> = users
                .iter()
                .enumerate()
                .filter(|(_, u)| u.ou == ou)
                .take(50)
                .map(|(i, _)| Member::User(i))
                .collect();
            if members.is_empty() {
                continue;
            }
            let name = format!("{} Team", OUS[ou].0);
            groups.push(Group {
                ou: GROUPS_OU,
                login: format!("team-{ou}"),
                cn: name,
                members,
            });
        }
        let teams: Vec<Member> = (0..groups.len()).map(Member::Group).collect();
        // Nested three deep: Inner ⊂ Middle ⊂ Outer.
        let inner = groups.len();
        groups.push(Group {
            ou: GROUPS_OU,
            cn: "Nested Inner".into(),
            login: "nested-inner".into(),
            members: vec![Member::User(1), Member::User(2)],
        });
        groups.push(Group {
            ou: GROUPS_OU,
            cn: "Nested Middle".into(),
            login: "nested-middle".into(),
            members: vec![Member::Group(inner), Member::User(3)],
        });
        groups.push(Group {
            ou: GROUPS_OU,
            cn: "Nested Outer".into(),
            login: "nested-outer".into(),
            members: vec![Member::Group(inner + 1), Member::User(9)],
        });
        groups.push(Group {
            ou: GROUPS_OU,
            cn: "All Teams".into(),
            login: "all-teams".into(),
            members: teams,
        });
        // The SSPR pilot group: every 7th user, at most 500.
        groups.push(Group {
            ou: GROUPS_OU,
            cn: "SSPR Pilot".into(),
            login: "sspr-pilot".into(),
            members: (0..users.len())
                .step_by(7)
                .take(500)
                .map(Member::User)
                .collect(),
        });
        // A group whose DN needs escaping.
        groups.push(Group {
            ou: GROUPS_OU,
            cn: "Ops, \"Night\" Shift".into(),
            login: "ops-night".into(),
            members: vec![Member::User(4), Member::User(5)],
        });

        Dataset {
            spec,
            ous,
            users,
            groups,
        }
    }

    /// An ordinary enabled user (plain ASCII DN), for tests that just need someone.
    pub fn sample_user(&self) -> &User {
        self.users
            .iter()
            .find(|u| u.enabled && !u.admin && u.cn.is_ascii() && escape_rdn_value(&u.cn) == u.cn)
            .unwrap_or(&self.users[0])
    }

    /// The protected administrator.
    pub fn admin_user(&self) -> &User {
        self.users
            .iter()
            .find(|u| u.admin)
            .expect("dataset has an admin")
    }

    /// Users whose RDN needs escaping.
    pub fn users_needing_escape(&self) -> impl Iterator<Item = &User> {
        self.users
            .iter()
            .filter(|u| escape_rdn_value(&u.cn) != u.cn)
    }

    /// The DN of OU `ou` below `root` (AD style `OU=`, or OpenLDAP style `ou=`).
    pub fn ou_dn(&self, ou: usize, root: &str, style: DnStyle) -> String {
        let mut dn = format!("{}={}", style.ou(), escape_rdn_value(&self.ous[ou].name));
        let mut cur = self.ous[ou].parent;
        while let Some(p) = cur {
            dn.push_str(&format!(
                ",{}={}",
                style.ou(),
                escape_rdn_value(&self.ous[p].name)
            ));
            cur = self.ous[p].parent;
        }
        format!("{dn},{root}")
    }

    /// The DN of user `i` below `root`.
    pub fn user_dn(&self, i: usize, root: &str, style: DnStyle) -> String {
        let u = &self.users[i];
        format!(
            "{}={},{}",
            style.cn(),
            escape_rdn_value(&u.cn),
            self.ou_dn(u.ou, root, style)
        )
    }

    /// The DN of group `i` below `root`.
    pub fn group_dn(&self, i: usize, root: &str, style: DnStyle) -> String {
        let g = &self.groups[i];
        format!(
            "{}={},{}",
            style.cn(),
            escape_rdn_value(&g.cn),
            self.ou_dn(g.ou, root, style)
        )
    }

    fn member_dn(&self, m: Member, root: &str, style: DnStyle) -> String {
        match m {
            Member::User(i) => self.user_dn(i, root, style),
            Member::Group(i) => self.group_dn(i, root, style),
        }
    }

    /// LDIF for Samba AD, below the synced root `root` (which must exist), for the offline
    /// loader: `unicodePwd` holds the NT hash and `pwdLastSet: -1` means "now". `realm` is the
    /// DNS domain for userPrincipalName. Protected admins are added to Domain Admins of
    /// `domain_dn`.
    pub fn write_ad_ldif(
        &self,
        w: &mut impl Write,
        root: &str,
        domain_dn: &str,
        realm: &str,
    ) -> io::Result<()> {
        let style = DnStyle::Ad;
        for i in 0..self.ous.len() {
            ldif_dn(w, &self.ou_dn(i, root, style))?;
            ldif_attr(w, "objectClass", "organizationalUnit")?;
            ldif_attr(w, "ou", &self.ous[i].name)?;
            writeln!(w)?;
        }
        for (i, u) in self.users.iter().enumerate() {
            ldif_dn(w, &self.user_dn(i, root, style))?;
            ldif_attr(w, "objectClass", "user")?;
            ldif_attr(w, "sAMAccountName", &u.login)?;
            ldif_attr(w, "userPrincipalName", &format!("{}@{}", u.login, realm))?;
            ldif_attr(w, "givenName", &u.given_name)?;
            ldif_attr(w, "sn", &u.surname)?;
            ldif_attr(w, "displayName", &u.display_name)?;
            ldif_attr(w, "mail", &u.mail)?;
            if let Some(m) = &u.mobile {
                ldif_attr(w, "mobile", m)?;
            }
            if let Some(t) = &u.telephone {
                ldif_attr(w, "telephoneNumber", t)?;
            }
            if let Some(c) = &u.country {
                ldif_attr(w, "c", c)?;
            }
            ldif_attr(
                w,
                "userAccountControl",
                if u.enabled { "512" } else { "514" },
            )?;
            ldif_bytes(w, "unicodePwd", &nt_hash(&u.password))?;
            ldif_attr(w, "pwdLastSet", "-1")?;
            if u.admin {
                ldif_attr(w, "adminCount", "1")?;
            }
            writeln!(w)?;
        }
        for (i, g) in self.groups.iter().enumerate() {
            ldif_dn(w, &self.group_dn(i, root, style))?;
            ldif_attr(w, "objectClass", "group")?;
            ldif_attr(w, "sAMAccountName", &g.login)?;
            for m in &g.members {
                ldif_attr(w, "member", &self.member_dn(*m, root, style))?;
            }
            writeln!(w)?;
        }
        for (i, u) in self.users.iter().enumerate() {
            if u.admin {
                ldif_dn(w, &format!("CN=Domain Admins,CN=Users,{domain_dn}"))?;
                writeln!(w, "changetype: modify\nadd: member")?;
                ldif_attr(w, "member", &self.user_dn(i, root, style))?;
                writeln!(w, "-\n")?;
            }
        }
        Ok(())
    }

    /// LDIF for OpenLDAP (`slapadd`), below the synced root `root` (which must exist).
    /// Passwords are `{SSHA}`; disabled users are locked permanently through ppolicy's
    /// `pwdAccountLockedTime`.
    pub fn write_openldap_ldif(&self, w: &mut impl Write, root: &str) -> io::Result<()> {
        let style = DnStyle::OpenLdap;
        for i in 0..self.ous.len() {
            ldif_dn(w, &self.ou_dn(i, root, style))?;
            ldif_attr(w, "objectClass", "organizationalUnit")?;
            ldif_attr(w, "ou", &self.ous[i].name)?;
            writeln!(w)?;
        }
        let mut salt_rng = Rng(self.spec.seed ^ 0x5A17);
        for (i, u) in self.users.iter().enumerate() {
            ldif_dn(w, &self.user_dn(i, root, style))?;
            ldif_attr(w, "objectClass", "inetOrgPerson")?;
            if u.country.is_some() {
                // inetOrgPerson has no `c`.
                ldif_attr(w, "objectClass", "extensibleObject")?;
            }
            ldif_attr(w, "cn", &u.cn)?;
            ldif_attr(w, "uid", &u.login)?;
            ldif_attr(w, "givenName", &u.given_name)?;
            ldif_attr(w, "sn", &u.surname)?;
            ldif_attr(w, "displayName", &u.display_name)?;
            ldif_attr(w, "mail", &u.mail)?;
            if let Some(m) = &u.mobile {
                ldif_attr(w, "mobile", m)?;
            }
            if let Some(t) = &u.telephone {
                ldif_attr(w, "telephoneNumber", t)?;
            }
            if let Some(c) = &u.country {
                ldif_attr(w, "c", c)?;
            }
            ldif_attr(w, "userPassword", &ssha(&u.password, salt_rng.next()))?;
            if !u.enabled {
                ldif_attr(w, "pwdAccountLockedTime", "000001010000Z")?;
            }
            writeln!(w)?;
        }
        for (i, g) in self.groups.iter().enumerate() {
            ldif_dn(w, &self.group_dn(i, root, style))?;
            ldif_attr(w, "objectClass", "groupOfNames")?;
            ldif_attr(w, "cn", &g.cn)?;
            for m in &g.members {
                ldif_attr(w, "member", &self.member_dn(*m, root, style))?;
            }
            writeln!(w)?;
        }
        Ok(())
    }
}

/// Naming attributes of each directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnStyle {
    Ad,
    OpenLdap,
}

impl DnStyle {
    fn ou(self) -> &'static str {
        match self {
            DnStyle::Ad => "OU",
            DnStyle::OpenLdap => "ou",
        }
    }
    fn cn(self) -> &'static str {
        match self {
            DnStyle::Ad => "CN",
            DnStyle::OpenLdap => "cn",
        }
    }
}

fn login_for(given: &str, surname: &str, i: usize) -> String {
    let fold = |s: &str| -> String {
        s.chars()
            .filter_map(|c| {
                let c = match c {
                    'å' | 'Å' | 'ä' | 'Ä' | 'á' | 'à' => 'a',
                    'ø' | 'Ø' | 'ö' | 'Ö' | 'ó' => 'o',
                    'æ' | 'Æ' => 'a',
                    'ü' | 'Ü' | 'ú' => 'u',
                    'é' | 'è' | 'ë' => 'e',
                    'ñ' | 'Ñ' => 'n',
                    'ł' | 'Ł' => 'l',
                    c => c,
                };
                c.is_ascii_alphanumeric().then(|| c.to_ascii_lowercase())
            })
            .collect()
    };
    let first: String = fold(given).chars().take(1).collect();
    let mut base = format!("{first}{}", fold(surname));
    if base.is_empty() {
        base.push('u');
    }
    let suffix = i.to_string();
    base.truncate(20 - suffix.len() - 1);
    format!("{base}.{suffix}")
}

/// Escapes an attribute value for use in a DN (RFC 4514).
pub fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == n - 1 => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// The NT hash (MD4 of the UTF-16LE password), which AD stores as `unicodePwd`.
pub fn nt_hash(password: &str) -> [u8; 16] {
    use md4::Digest as _;
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    Md4::digest(&utf16).into()
}

/// `{SSHA}` of `password` with an 8-byte salt.
pub fn ssha(password: &str, salt: u64) -> String {
    let salt = salt.to_le_bytes();
    let mut h = Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!("{{SSHA}}{}", B64.encode(raw))
}

fn is_safe_ldif(v: &str) -> bool {
    let b = v.as_bytes();
    if b.is_empty() {
        return true;
    }
    if matches!(b[0], b' ' | b':' | b'<') || b[b.len() - 1] == b' ' {
        return false;
    }
    b.iter()
        .all(|&c| c.is_ascii() && c != b'\n' && c != b'\r' && c != 0)
}

fn ldif_dn(w: &mut impl Write, dn: &str) -> io::Result<()> {
    ldif_attr(w, "dn", dn)
}

fn ldif_attr(w: &mut impl Write, name: &str, value: &str) -> io::Result<()> {
    if is_safe_ldif(value) {
        writeln!(w, "{name}: {value}")
    } else {
        writeln!(w, "{name}:: {}", B64.encode(value.as_bytes()))
    }
}

fn ldif_bytes(w: &mut impl Write, name: &str, value: &[u8]) -> io::Result<()> {
    writeln!(w, "{name}:: {}", B64.encode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_spec_same_dataset() {
        let a = Dataset::generate(DatasetSpec::new(500, 7));
        let b = Dataset::generate(DatasetSpec::new(500, 7));
        let c = Dataset::generate(DatasetSpec::new(500, 8));
        let render = |d: &Dataset| {
            let mut v = Vec::new();
            d.write_openldap_ldif(&mut v, "ou=Corp,dc=x").unwrap();
            v
        };
        assert_eq!(render(&a), render(&b));
        assert_ne!(render(&a), render(&c));
    }

    #[test]
    fn logins_are_unique_and_short() {
        let d = Dataset::generate(DatasetSpec::new(5000, 1));
        let mut seen = HashSet::new();
        for u in &d.users {
            assert!(u.login.len() <= 20, "{}", u.login);
            assert!(u.login.is_ascii());
            assert!(seen.insert(u.login.clone()), "duplicate {}", u.login);
        }
        assert_eq!(d.users.len(), 5000);
    }

    #[test]
    fn covers_the_special_cases() {
        let d = Dataset::generate(DatasetSpec::small());
        let escaped: Vec<String> = d
            .users_needing_escape()
            .map(|u| escape_rdn_value(&u.cn))
            .collect();
        for needle in [
            "\\,", "\\+", "\\\"", "\\\\", "\\#", "\\ ", "\\<", "\\;", "\\=",
        ] {
            assert!(
                escaped.iter().any(|e| e.contains(needle)),
                "no DN with {needle}"
            );
        }
        assert!(d.users.iter().any(|u| !u.cn.is_ascii()));
        assert!(d.users.iter().any(|u| !u.enabled));
        assert_eq!(d.users.iter().filter(|u| u.admin).count(), 1);
        assert!(d
            .groups
            .iter()
            .any(|g| g.members.iter().any(|m| matches!(m, Member::Group(_)))));
        assert!(d.users.iter().any(|u| u.country.is_none()));
    }

    #[test]
    fn escapes_per_rfc4514() {
        assert_eq!(escape_rdn_value("Berg, Ola"), "Berg\\, Ola");
        assert_eq!(escape_rdn_value("#a b "), "\\#a b\\ ");
        assert_eq!(escape_rdn_value(" x"), "\\ x");
        assert_eq!(escape_rdn_value("a#b"), "a#b");
    }

    #[test]
    fn nt_hash_matches_known_vector() {
        // MD4(UTF-16LE("password"))
        assert_eq!(
            nt_hash("password")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "8846f7eaee8fb117ad06bdd830b7586c"
        );
    }
}
