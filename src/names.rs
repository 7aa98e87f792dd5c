//! Device names instead of hex ids, and times in the local time zone: what every report that
//! names a writer shows.

use std::collections::{BTreeMap, BTreeSet};

use deltasync_engine::Engine;
use jiff::tz::TimeZone;

/// Device ids → names, as this device knows them (its copy of meta.json; no request).
#[derive(Debug, Clone, Default)]
pub struct Names {
    names: BTreeMap<String, String>,
    /// Names that more than one device has.
    shared: BTreeSet<String>,
    /// This device's id.
    me: String,
}

impl Names {
    /// The names the engine knows; none if its local state cannot say (then ids are shown).
    pub fn of(engine: &Engine) -> Names {
        let names = engine.device_names().unwrap_or_default();
        Names::new(names, engine.device_id())
    }

    /// From id → name, for the device `me`.
    pub fn new(names: BTreeMap<String, String>, me: &str) -> Names {
        let mut seen = BTreeSet::new();
        let shared = names
            .values()
            .filter(|n| !seen.insert(n.as_str()))
            .cloned()
            .collect();
        Names {
            names,
            shared,
            me: me.to_owned(),
        }
    }

    /// The device's name; with its id where another device has the same name; the id alone
    /// when the name is unknown.
    pub fn who(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(name) if self.shared.contains(name) => format!("{name} ({id})"),
            Some(name) => name.clone(),
            None if id.is_empty() => "an unknown device".into(),
            None => id.to_owned(),
        }
    }

    /// Whether `id` is this device.
    pub fn is_me(&self, id: &str) -> bool {
        id == self.me
    }

    /// [`Names::who`], with "this device" said where it is this one.
    pub fn who_here(&self, id: &str) -> String {
        if id == self.me {
            format!("{}, this device", self.who(id))
        } else {
            self.who(id)
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS ZONE` in the system's time zone (TZ, else /etc/localtime; UTC when
/// neither says).
pub fn local(ms: u64) -> String {
    time_in(ms, &TimeZone::system())
}

/// `YYYY-MM-DD HH:MM:SS ZONE` in `tz`; the offset where the zone has no abbreviation.
pub fn time_in(ms: u64, tz: &TimeZone) -> String {
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms.min(i64::MAX as u64) as i64) else {
        return format!("{ms} ms after 1970");
    };
    let zoned = ts.to_zoned(tz.clone());
    let abbr = tz.to_offset_info(ts).abbreviation().to_string();
    let zone = if abbr.is_empty() || abbr.starts_with(['+', '-']) {
        zoned.strftime("%:z").to_string()
    } else {
        abbr
    };
    format!("{} {zone}", zoned.strftime("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_in_the_given_zone_with_its_abbreviation() {
        let ms = 1_796_154_350_146; // 2026-12-01 19:45:50 UTC
        assert_eq!(time_in(ms, &TimeZone::UTC), "2026-12-01 19:45:50 UTC");
        let berlin = TimeZone::get("Europe/Berlin").expect("zoneinfo on this machine");
        assert_eq!(time_in(ms, &berlin), "2026-12-01 20:45:50 CET");
        let fixed = TimeZone::fixed(jiff::tz::offset(5));
        assert_eq!(time_in(ms, &fixed), "2026-12-02 00:45:50 +05:00");
    }

    #[test]
    fn names_instead_of_ids_and_the_id_only_where_two_share_a_name() {
        let names = Names::new(
            [("aaa", "laptop"), ("bbb", "phone"), ("ccc", "phone")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            "aaa",
        );
        assert_eq!(names.who("aaa"), "laptop");
        assert_eq!(names.who_here("aaa"), "laptop, this device");
        assert_eq!(names.who("bbb"), "phone (bbb)");
        assert_eq!(names.who("ccc"), "phone (ccc)");
        assert_eq!(names.who("ddd"), "ddd");
    }
}
