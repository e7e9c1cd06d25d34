//! C2SP `tlog-policy`: which logs, which witnesses (cosignature/v1 keys, and where to submit to
//! them), and the quorum of witnesses a checkpoint needs (`none`, one witness, or nested groups
//! with `all`, `any` or a threshold). Names are defined before they are used, once each.

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::VerifyingKey;

use crate::audit::{
    checkpoint::parse_verifier_key,
    cosignature::{cosigned_by, parse_witness_key, Cosigned, Witness},
};

/// One witness of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyWitness {
    /// Its name in the policy file (groups refer to it).
    pub label: String,
    /// Its cosigner name and key.
    pub witness: Witness,
    /// Its submission prefix, if given (`https://host:port`).
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    None,
    Witness(usize),
    Group { k: usize, members: Vec<Rule> },
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The logs it names: origin → key.
    pub logs: HashMap<String, VerifyingKey>,
    /// Its witnesses, in file order.
    pub witnesses: Vec<PolicyWitness>,
    quorum: Rule,
}

/// Why a policy file does not parse, with its line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy line {line}: {why}")]
pub(crate) struct PolicyError {
    /// 1-based.
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

impl Policy {
    /// Parses a policy file.
    pub(crate) fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut logs = HashMap::new();
        let mut witnesses: Vec<PolicyWitness> = Vec::new();
        let mut names: HashMap<String, Rule> = HashMap::new();
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut quorum = None;
        for (n, raw) in text.lines().enumerate() {
            let err = |why: String| PolicyError { line: n + 1, why };
            let words: Vec<&str> = raw.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            match words.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["log", vkey, ..] if words.len() <= 3 => {
                    let (origin, key) = parse_verifier_key(vkey).map_err(|e| err(e.to_string()))?;
                    logs.insert(origin, key);
                }
                ["witness", label, vkey, rest @ ..] if rest.len() <= 1 => {
                    if *label == "none" || names.contains_key(*label) {
                        return Err(err(format!("name {label} defined twice or reserved")));
                    }
                    let witness = parse_witness_key(vkey).map_err(|e| err(e.to_string()))?;
                    if witnesses.iter().any(|w| w.witness.key == witness.key) {
                        return Err(err("a duplicate witness key".into()));
                    }
                    names.insert(label.to_string(), Rule::Witness(witnesses.len()));
                    witnesses.push(PolicyWitness {
                        label: label.to_string(),
                        witness,
                        url: rest.first().map(|u| u.to_string()),
                    });
                }
                ["group", label, k, members @ ..] if !members.is_empty() => {
                    if *label == "none" || names.contains_key(*label) {
                        return Err(err(format!("name {label} defined twice or reserved")));
                    }
                    let k = match *k {
                        "all" => members.len(),
                        "any" => 1,
                        k => k
                            .parse()
                            .ok()
                            .filter(|k| (1..=members.len()).contains(k))
                            .ok_or_else(|| err(format!("bad threshold {k}")))?,
                    };
                    let mut rules = Vec::new();
                    for m in members {
                        let rule = names.get(*m).ok_or_else(|| err(format!("{m} is not defined above")))?;
                        if !used.insert(m.to_string()) {
                            return Err(err(format!("{m} is a member twice")));
                        }
                        rules.push(rule.clone());
                    }
                    names.insert(label.to_string(), Rule::Group { k, members: rules });
                }
                ["quorum", name] => {
                    if quorum.is_some() {
                        return Err(err("a second quorum line".into()));
                    }
                    quorum = Some(match *name {
                        "none" => Rule::None,
                        n => names.get(n).cloned().ok_or_else(|| err(format!("{n} is not defined above")))?,
                    });
                }
                _ => return Err(err(format!("not a policy line: {raw:?}"))),
            }
        }
        let quorum = quorum.ok_or(PolicyError { line: 0, why: "no quorum line".into() })?;
        Ok(Self { logs, witnesses, quorum })
    }

    /// Which witnesses cosigned `note` (their policy labels), checking every line by a known
    /// witness: a failing one rejects the note (`Err` with that witness's label).
    pub(crate) fn cosigners(&self, note: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for w in &self.witnesses {
            match cosigned_by(note, &w.witness) {
                Cosigned::At(_) => out.push(w.label.clone()),
                Cosigned::Absent => {}
                Cosigned::Bad => return Err(w.label.clone()),
            }
        }
        Ok(out)
    }

    /// Whether `cosigners` (policy labels) meet the quorum.
    pub(crate) fn satisfied(&self, cosigners: &[String]) -> bool {
        fn holds(rule: &Rule, ws: &[PolicyWitness], signed: &[String]) -> bool {
            match rule {
                Rule::None => true,
                Rule::Witness(i) => signed.contains(&ws[*i].label),
                Rule::Group { k, members } => members.iter().filter(|m| holds(m, ws, signed)).count() >= *k,
            }
        }
        holds(&self.quorum, &self.witnesses, cosigners)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::audit::cosignature::witness_key;

    fn vkey(n: u8, name: &str) -> String {
        witness_key(name, &SigningKey::from_bytes(&[n; 32]).verifying_key())
    }

    #[test]
    fn the_specs_nested_groups_decide_the_quorum() {
        let text = format!(
            "# two organisations\nwitness X1 {}\nwitness X2 {} https://127.0.0.1:1\nwitness X3 {}\n\
             group X-witnesses 2 X1 X2 X3\nwitness Y1 {}\n  witness\tY2 {}\ngroup Y-witnesses any Y1 Y2\n\
             group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n",
            vkey(1, "x1"),
            vkey(2, "x2"),
            vkey(3, "x3"),
            vkey(4, "y1"),
            vkey(5, "y2")
        );
        let p = Policy::parse(&text).unwrap();
        assert_eq!(p.witnesses[1].url.as_deref(), Some("https://127.0.0.1:1"));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(p.satisfied(&s(&["X1", "X3", "Y2"])));
        assert!(!p.satisfied(&s(&["X1", "Y1", "Y2"])), "one X is not two");
        assert!(!p.satisfied(&s(&["X1", "X2", "X3"])), "no Y");
        assert!(Policy::parse("quorum none\n").unwrap().satisfied(&[]));
        for bad in [
            "quorum X\n".to_string(),
            format!("witness A {}\nwitness A {}\nquorum A\n", vkey(1, "a"), vkey(2, "b")),
            format!("witness A {}\nwitness B {}\nquorum A\n", vkey(1, "a"), vkey(1, "b")),
            format!("witness A {}\ngroup G 2 A\nquorum G\n", vkey(1, "a")),
            format!("witness A {}\ngroup G any A A\nquorum G\n", vkey(1, "a")),
            format!("witness A {}\n", vkey(1, "a")),
            "quorum none\nquorum none\n".to_string(),
        ] {
            assert!(Policy::parse(&bad).is_err(), "{bad}");
        }
    }
}
