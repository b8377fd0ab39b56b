//! Reusable validators and block checks. Every one tolerates unknown values: it checks what is known and stays quiet
//! about the rest, so `terraform validate` and plans with values from other resources never fail spuriously.

use std::sync::Arc;

use super::diag::{AttrPath, Diagnostics};
use super::schema::{BlockCheck, Validator};
use super::value::Value;

/// The string must be one of `allowed`.
pub fn one_of(allowed: &'static [&'static str]) -> Validator {
    Arc::new(move |v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(s) = v.as_str() {
            if !allowed.contains(&s) {
                d.error_at(
                    p.clone(),
                    format!("Invalid value for `{p}`"),
                    format!("{s:?} is not allowed; use one of: {}.", allowed.join(", ")),
                );
            }
        }
    })
}

/// The number must be a whole number between `min` and `max`, inclusive.
pub fn int_between(min: i64, max: i64) -> Validator {
    Arc::new(move |v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Value::Number(n) = v {
            match n.as_i64() {
                Some(i) if (min..=max).contains(&i) => {}
                _ => d.error_at(
                    p.clone(),
                    format!("Invalid value for `{p}`"),
                    format!("must be a whole number from {min} to {max}."),
                ),
            }
        }
    })
}

/// The string must not be empty (or only spaces).
pub fn not_blank() -> Validator {
    Arc::new(|v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(s) = v.as_str() {
            if s.trim().is_empty() {
                d.error_at(p.clone(), format!("Empty value for `{p}`"), "set a non-empty value or remove the argument.");
            }
        }
    })
}

/// The string must start with `prefix` (AWS ids: `vpc-`, `ami-`, ...).
pub fn prefixed(prefix: &'static str) -> Validator {
    Arc::new(move |v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(s) = v.as_str() {
            if !s.starts_with(prefix) || s.len() == prefix.len() {
                d.error_at(p.clone(), format!("Invalid value for `{p}`"), format!("{s:?} is not an id of the form {prefix}…"));
            }
        }
    })
}

/// Every element of a list or set, or value of a map, passes `inner`.
pub fn each(inner: Validator) -> Validator {
    Arc::new(move |v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(items) = v.elements() {
            for (i, item) in items.iter().enumerate() {
                if !item.is_null() && !item.is_unknown() {
                    inner(item, &p.clone().index(i), d);
                }
            }
        } else if let Some(entries) = v.entries() {
            for (k, item) in entries {
                if !item.is_null() && !item.is_unknown() {
                    inner(item, &p.clone().key(k), d);
                }
            }
        }
    })
}

/// Parses `a.b.c.d/n` or an IPv6 CIDR; the address must be the network address (no host bits), as AWS stores it.
pub fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8), String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| format!("{s:?} is not a CIDR block such as \"203.0.113.10/32\""))?;
    let ip: std::net::IpAddr = addr.parse().map_err(|_| format!("{addr:?} in {s:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len.parse().ok().filter(|l| *l <= max).ok_or_else(|| format!("{s:?} has prefix length {len:?}; use 0–{max}"))?;
    let network = match ip {
        std::net::IpAddr::V4(v4) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            std::net::IpAddr::V4((u32::from(v4) & mask).into())
        }
        std::net::IpAddr::V6(v6) => {
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            std::net::IpAddr::V6((u128::from(v6) & mask).into())
        }
    };
    if network != ip {
        return Err(format!("{s:?} has host bits set; the block is {network}/{len}"));
    }
    Ok((ip, len))
}

/// The string is a CIDR block whose address is its network address.
pub fn cidr() -> Validator {
    Arc::new(|v: &Value, p: &AttrPath, d: &mut Diagnostics| {
        if let Some(s) = v.as_str() {
            if let Err(e) = parse_cidr(s) {
                d.error_at(p.clone(), format!("Invalid CIDR block in `{p}`"), e);
            }
        }
    })
}

fn is_set(v: &Value) -> bool {
    !v.is_null()
}

/// Exactly one of the attributes must be set. Unknown counts as set (it will have a value).
pub fn exactly_one_of(names: &'static [&'static str]) -> BlockCheck {
    Arc::new(move |block: &Value, p: &AttrPath, d: &mut Diagnostics| {
        let set: Vec<&str> = names.iter().copied().filter(|n| is_set(block.get(n))).collect();
        let listed = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" or ");
        if set.is_empty() {
            d.push(
                super::diag::Diagnostic::error(
                    format!("Missing required argument: one of {listed}"),
                    format!("Set exactly one of {listed}."),
                )
                .at(if p.0.is_empty() { AttrPath::root(names[0]) } else { p.clone() }),
            );
        } else if set.len() > 1 {
            let path = p.clone().attr(set[1]);
            d.error_at(path, format!("Conflicting arguments: {listed}"), format!("Set only one of {listed}; both `{}` and `{}` are set.", set[0], set[1]));
        }
    })
}

/// At most one of the attributes may be set.
pub fn conflicting(names: &'static [&'static str]) -> BlockCheck {
    Arc::new(move |block: &Value, p: &AttrPath, d: &mut Diagnostics| {
        let set: Vec<&str> = names.iter().copied().filter(|n| is_set(block.get(n))).collect();
        if set.len() > 1 {
            d.error_at(
                p.clone().attr(set[1]),
                format!("Conflicting arguments `{}` and `{}`", set[0], set[1]),
                format!("`{}` and `{}` cannot be used together; remove one of them.", set[0], set[1]),
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object;

    #[test]
    fn exactly_one_of_names_both_attributes_and_tolerates_unknown() {
        let check = exactly_one_of(&["vpc_name", "vpc_id"]);
        let mut d = Diagnostics::new();
        check(&object! {"vpc_name" => Value::Null, "vpc_id" => Value::Null}, &AttrPath::default(), &mut d);
        assert!(d.has_errors());
        assert!(d.0[0].summary.contains("`vpc_name`") && d.0[0].summary.contains("`vpc_id`"));
        let mut d = Diagnostics::new();
        check(&object! {"vpc_name" => Value::unknown(), "vpc_id" => Value::Null}, &AttrPath::default(), &mut d);
        assert!(d.is_empty());
    }

    #[test]
    fn cidrs_must_be_network_addresses() {
        assert!(parse_cidr("203.0.113.10/32").is_ok());
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("2001:db8::/32").is_ok());
        assert!(parse_cidr("10.0.0.1/8").unwrap_err().contains("10.0.0.0/8"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("office").is_err());
    }

    #[test]
    fn int_between_names_the_attribute() {
        let mut d = Diagnostics::new();
        int_between(1, 10)(&Value::int(11), &AttrPath::root("count"), &mut d);
        assert_eq!(d.0[0].path, Some(AttrPath::root("count")));
        assert!(d.0[0].detail.contains("1 to 10"));
    }
}
