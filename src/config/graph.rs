//! The association graph of one system's configs: every radiant beacons the one
//! neighbour its config names, so the configs of a brand-new system must link all of its
//! radiants together, or some of them will never find the others.
//!
//! This module only compares configs that already passed `Config::validate`; it reads
//! no files and opens no sockets. It reports every problem at once, each a sentence that
//! names the file(s), the address(es) and what to do, and never panics on any input.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::Config;

/// What [`check`] found across the configs of one system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphReport {
    /// How many radiants (configs) were checked.
    pub radiants: usize,
    /// Invariants the configs break; the system should not be started until it is empty.
    pub problems: Vec<String>,
    /// Facts worth knowing that are not wrong (the first radiant has no neighbour).
    pub notes: Vec<String>,
}

impl GraphReport {
    /// True when no invariant is broken.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the configs of one system together. Each entry is `(origin, config)`, where the
/// origin (usually the file name) is how the reports name the radiant.
///
/// The invariants: no radiant names itself as its neighbour; every neighbour is the peer
/// address of a radiant of the set; only one radiant may go without a neighbour (the
/// first, which the others' beacons reach); no two radiants listen on the same address or
/// share a data directory on the same IP; the graph "radiant → neighbour", taken
/// undirected, is connected; and the configs agree with each other and with their count on
/// `bootstrap_expect`, `order_size`, `shard_count` and `cluster_secret`.
pub fn check(configs: &[(String, Config)]) -> GraphReport {
    let mut report = GraphReport { radiants: configs.len(), ..GraphReport::default() };
    if configs.is_empty() {
        report.problems.push("no configs to check: give every radiant's config".to_string());
        return report;
    }
    let edges = check_neighbours(configs, &mut report);
    check_components(configs, &edges, &mut report);
    check_listen_addresses(configs, &mut report);
    check_data_dirs(configs, &mut report);
    check_agreement(configs, &mut report);
    report
}

/// Checks each radiant's neighbour and returns the edges "radiant → neighbour" (indices
/// into `configs`) of the neighbours that name a radiant of the set.
fn check_neighbours(configs: &[(String, Config)], report: &mut GraphReport) -> Vec<(usize, usize)> {
    // The first radiant to claim a peer address owns it; a second claim is reported by
    // `check_listen_addresses`. Port 0 is never a neighbour (validation refuses it).
    let mut peers: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for (index, (_, config)) in configs.iter().enumerate() {
        if config.my_port != 0 {
            peers.entry(config.peer_addr()).or_insert(index);
        }
    }
    let mut edges = Vec::new();
    let mut without: Vec<&str> = Vec::new();
    for (index, (origin, config)) in configs.iter().enumerate() {
        let Some(neighbour) = config.neighbor_addr() else {
            without.push(origin);
            continue;
        };
        if neighbour == config.peer_addr() {
            report.problems.push(format!(
                "{origin}: its neighbour {neighbour} is its own peer address (`my_ip`:`my_port`); \
                 set `neighbor_ip`/`neighbor_port` to another radiant's peer address"
            ));
        } else if let Some(&target) = peers.get(&neighbour) {
            edges.push((index, target));
        } else {
            report.problems.push(format!(
                "{origin}: its neighbour {neighbour} is not the peer address of any of the {} \
                 configs checked (they are {}); point it at one of them, or check all of the \
                 system's configs together",
                configs.len(),
                joined(peers.keys())
            ));
        }
    }
    check_without_neighbour(configs.len(), &without, report);
    edges
}

/// A single radiant needs no neighbour; in a larger system only the first may go without,
/// because the others' beacons are how it is found.
fn check_without_neighbour(radiants: usize, without: &[&str], report: &mut GraphReport) {
    match without {
        [] => {}
        [_] if radiants == 1 => {}
        [first] => report.notes.push(format!(
            "{first} has no neighbour: it is the first radiant, found by the beacons of the \
             radiants that point at it"
        )),
        several => report.problems.push(format!(
            "{} have no neighbour, but in a system of {radiants} radiants only the first may \
             go without one; set `neighbor_ip`/`neighbor_port` in all but one of them to \
             another radiant's peer address",
            joined(several)
        )),
    }
}

/// Reports the groups of radiants that no neighbour links together. Direction does not
/// matter: a beacon answered makes the two radiants known to each other.
fn check_components(
    configs: &[(String, Config)],
    edges: &[(usize, usize)],
    report: &mut GraphReport,
) {
    let mut adjacent: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for &(from, to) in edges {
        adjacent.entry(from).or_default().insert(to);
        adjacent.entry(to).or_default().insert(from);
    }
    let mut seen: BTreeSet<usize> = BTreeSet::new();
    let mut components: Vec<Vec<&str>> = Vec::new();
    for start in 0..configs.len() {
        if !seen.insert(start) {
            continue;
        }
        // Every index enters `pending` at most once (guarded by `seen`), so this ends.
        let mut members = BTreeSet::from([start]);
        let mut pending = vec![start];
        while let Some(index) = pending.pop() {
            for &next in adjacent.get(&index).into_iter().flatten() {
                if seen.insert(next) {
                    members.insert(next);
                    pending.push(next);
                }
            }
        }
        let origins = members.iter().filter_map(|&index| configs.get(index));
        components.push(origins.map(|(origin, _)| origin.as_str()).collect());
    }
    if components.len() > 1 {
        let groups: Vec<String> =
            components.iter().map(|component| format!("{{{}}}", joined(component))).collect();
        report.problems.push(format!(
            "the association graph is not connected: {} separate groups: {}; no beacon \
             crosses from one group to another, so point a radiant of each group at a radiant \
             of another group",
            components.len(),
            groups.join(", ")
        ));
    }
}

/// No two radiants may listen on the same address, whether as peer or client address.
/// Port 0 picks a free port at start, so it never collides.
fn check_listen_addresses(configs: &[(String, Config)], report: &mut GraphReport) {
    let mut users: BTreeMap<SocketAddr, Vec<String>> = BTreeMap::new();
    for (origin, config) in configs {
        if config.my_port != 0 {
            let entry = users.entry(config.peer_addr()).or_default();
            entry.push(format!("peer address of {origin}"));
        }
        if config.client_port != 0 {
            let entry = users.entry(config.client_addr()).or_default();
            entry.push(format!("client address of {origin}"));
        }
    }
    for (address, uses) in users {
        if uses.len() > 1 {
            report.problems.push(format!(
                "{address} is used by more than one radiant ({}); only one can listen there, so \
                 give each radiant its own `my_port` and `client_port`",
                uses.join(", ")
            ));
        }
    }
}

/// Radiants on the same IP (the same machine) must not share a data directory: the
/// second one to start would find the first one's lock.
fn check_data_dirs(configs: &[(String, Config)], report: &mut GraphReport) {
    let mut users: BTreeMap<(IpAddr, PathBuf), Vec<&str>> = BTreeMap::new();
    for (origin, config) in configs {
        users.entry((config.my_ip, config.data_dir.clone())).or_default().push(origin);
    }
    for ((ip, data_dir), origins) in users {
        if origins.len() > 1 {
            report.problems.push(format!(
                "{} all keep their data in `{}` on {ip}; a data directory belongs to one \
                 radiant, so give each its own `data_dir`",
                joined(&origins),
                data_dir.display()
            ));
        }
    }
}

/// The keys every radiant of one system must agree on, and `bootstrap_expect` must count
/// the radiants checked.
fn check_agreement(configs: &[(String, Config)], report: &mut GraphReport) {
    let expect = disagreement(configs, "bootstrap_expect", |config| config.bootstrap_expect);
    match expect {
        Err(problem) => report.problems.push(problem),
        Ok(expected) if usize::try_from(expected).ok() != Some(configs.len()) => {
            report.problems.push(format!(
                "{} configs were checked, but each sets `bootstrap_expect` = {expected}: a new \
                 system forms from exactly `bootstrap_expect` radiants; check every config of \
                 the system at once, or set `bootstrap_expect` = {} in each",
                configs.len(),
                configs.len()
            ));
        }
        Ok(_) => {}
    }
    let order_size = disagreement(configs, "order_size", |config| config.order_size);
    let shard_count = disagreement(configs, "shard_count", |config| config.shard_count);
    report.problems.extend(order_size.err());
    report.problems.extend(shard_count.err());
    // Secrets are never printed: each distinct one is numbered in order of appearance.
    let mut secrets: Vec<Option<&str>> = Vec::new();
    for (_, config) in configs {
        let secret = config.cluster_secret.as_ref().map(|secret| secret.0.as_str());
        if !secrets.contains(&secret) {
            secrets.push(secret);
        }
    }
    let secret_number = |config: &Config| {
        let secret = config.cluster_secret.as_ref().map(|secret| secret.0.as_str());
        let position = secrets.iter().position(|known| *known == secret).unwrap_or(0);
        if secret.is_none() {
            0
        } else {
            u32::try_from(position + 1).unwrap_or(u32::MAX)
        }
    };
    let key = "cluster_secret` (the secrets are numbered in order of appearance, 0 for none; \
               their peers refuse radiants with another";
    report.problems.extend(disagreement(configs, key, secret_number).err());
}

/// The one value all configs give `key`, or a problem naming each value and its files.
fn disagreement(
    configs: &[(String, Config)],
    key: &str,
    value: impl Fn(&Config) -> u32,
) -> Result<u32, String> {
    let mut groups: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for (origin, config) in configs {
        groups.entry(value(config)).or_default().push(origin);
    }
    let mut values = groups.keys().copied();
    match (values.next(), values.next()) {
        (Some(only), None) => Ok(only),
        _ => {
            let each: Vec<String> = groups
                .iter()
                .map(|(value, origins)| format!("{value} in {}", joined(origins)))
                .collect();
            Err(format!(
                "the configs disagree on `{key}` ({}); every radiant of one system must set the \
                 same value",
                each.join("; ")
            ))
        }
    }
}

fn joined<T: Display>(items: impl IntoIterator<Item = T>) -> String {
    let texts: Vec<String> = items.into_iter().map(|item| item.to_string()).collect();
    texts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE_PORT: u16 = 7500;

    /// Radiant `number` of a loopback system: peer port 7500 + 10n, client port one above,
    /// its own data directory, `bootstrap_expect` = 6.
    fn radiant(number: u16, neighbour: Option<u16>) -> (String, Config) {
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let config = Config {
            my_port: BASE_PORT + 10 * number,
            client_port: BASE_PORT + 10 * number + 1,
            neighbor_ip: neighbour.map(|_| loopback),
            neighbor_port: neighbour.map(|other| BASE_PORT + 10 * other),
            data_dir: PathBuf::from(format!("data-{number}")),
            bootstrap_expect: 6,
            cluster_secret: Some(crate::config::Secret("graph test secret 16+".to_string())),
            ..Config::default()
        };
        config.validate("test").expect("the test's configs are valid on their own");
        (format!("r{number}.toml"), config)
    }

    fn ring(numbers: &[u16]) -> Vec<(String, Config)> {
        let next = numbers.iter().cycle().skip(1);
        numbers.iter().zip(next).map(|(&number, &next)| radiant(number, Some(next))).collect()
    }

    fn problems_mentioning(report: &GraphReport, text: &str) -> Vec<String> {
        report.problems.iter().filter(|problem| problem.contains(text)).cloned().collect()
    }

    #[test]
    fn a_ring_of_six_is_connected_and_has_no_problem() {
        let report = check(&ring(&[0, 1, 2, 3, 4, 5]));
        assert!(report.is_ok(), "{report:#?}");
        assert!(report.notes.is_empty(), "{report:#?}");
        assert_eq!(report.radiants, 6);
    }

    #[test]
    fn a_star_of_six_is_ok_and_notes_the_first_radiant() {
        let mut configs = vec![radiant(0, None)];
        configs.extend((1..6).map(|number| radiant(number, Some(0))));
        let report = check(&configs);
        assert!(report.is_ok(), "{report:#?}");
        assert_eq!(report.notes.len(), 1, "{report:#?}");
        assert!(report.notes[0].starts_with("r0.toml has no neighbour"), "{report:#?}");
    }

    #[test]
    fn a_radiant_that_names_itself_as_neighbour_is_a_self_loop() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        configs[3] = radiant(3, Some(3));
        let report = check(&configs);
        let found = problems_mentioning(&report, "its own peer address");
        assert_eq!(found.len(), 1, "{report:#?}");
        assert!(found[0].starts_with("r3.toml: its neighbour 127.0.0.1:7530"), "{found:?}");
    }

    #[test]
    fn a_neighbour_that_is_no_radiant_of_the_set_is_named_with_its_file() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        configs[2] = radiant(2, Some(9));
        let report = check(&configs);
        let found = problems_mentioning(&report, "is not the peer address");
        assert_eq!(found.len(), 1, "{report:#?}");
        assert!(found[0].starts_with("r2.toml: its neighbour 127.0.0.1:7590"), "{found:?}");
    }

    #[test]
    fn two_rings_are_two_components_each_listed_by_its_files() {
        let mut configs = ring(&[0, 1, 2]);
        configs.extend(ring(&[3, 4, 5]));
        let report = check(&configs);
        assert_eq!(report.problems.len(), 1, "{report:#?}");
        let problem = &report.problems[0];
        assert!(problem.contains("2 separate groups"), "{problem}");
        assert!(problem.contains("{r0.toml, r1.toml, r2.toml}"), "{problem}");
        assert!(problem.contains("{r3.toml, r4.toml, r5.toml}"), "{problem}");
    }

    #[test]
    fn two_radiants_with_the_same_peer_address_are_both_named() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        let (_, ref mut config) = configs[4];
        config.my_port = BASE_PORT + 10 * 5;
        let report = check(&configs);
        let found = problems_mentioning(&report, "127.0.0.1:7550 is used by more than one");
        assert_eq!(found.len(), 1, "{report:#?}");
        assert!(found[0].contains("peer address of r4.toml"), "{found:?}");
        assert!(found[0].contains("peer address of r5.toml"), "{found:?}");
    }

    #[test]
    fn a_shared_data_directory_on_one_ip_names_both_files() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        let (_, ref mut config) = configs[1];
        config.data_dir = PathBuf::from("data-0");
        let report = check(&configs);
        let found = problems_mentioning(&report, "r0.toml, r1.toml all keep their data");
        assert_eq!(found.len(), 1, "{report:#?}");
    }

    #[test]
    fn bootstrap_expect_that_differs_from_the_number_of_configs_is_a_problem() {
        let report = check(&ring(&[0, 1, 2, 3, 4]));
        let found = problems_mentioning(&report, "5 configs were checked");
        assert_eq!(found.len(), 1, "{report:#?}");
        assert!(found[0].contains("`bootstrap_expect` = 6"), "{found:?}");
    }

    #[test]
    fn configs_that_disagree_on_bootstrap_expect_are_named_with_their_values() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        let (_, ref mut config) = configs[5];
        config.bootstrap_expect = 5;
        let report = check(&configs);
        let found = problems_mentioning(&report, "disagree on `bootstrap_expect`");
        assert_eq!(found.len(), 1, "{report:#?}");
        let expected = "5 in r5.toml; 6 in r0.toml, r1.toml, r2.toml, r3.toml, r4.toml";
        assert!(found[0].contains(expected), "{found:?}");
    }

    #[test]
    fn configs_with_another_secret_are_named_without_showing_the_secret() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        configs[4].1.cluster_secret =
            Some(crate::config::Secret("another secret of 16+ bytes".into()));
        let report = check(&configs);
        let found = problems_mentioning(&report, "disagree on `cluster_secret`");
        assert_eq!(found.len(), 1, "{:?}", report.problems);
        assert!(found[0].contains("2 in r4.toml"), "{}", found[0]);
        assert!(!found[0].contains("another secret"), "the secret is shown: {}", found[0]);
    }

    #[test]
    fn configs_that_disagree_on_shard_count_are_named_with_their_values() {
        let mut configs = ring(&[0, 1, 2, 3, 4, 5]);
        let (_, ref mut config) = configs[0];
        config.shard_count = 128;
        let report = check(&configs);
        let found = problems_mentioning(&report, "disagree on `shard_count`");
        assert_eq!(found.len(), 1, "{report:#?}");
        assert!(found[0].contains("128 in r0.toml"), "{found:?}");
    }

    #[test]
    fn a_single_radiant_without_neighbour_is_ok() {
        let (origin, mut config) = radiant(0, None);
        config.bootstrap_expect = 1;
        let report = check(&[(origin, config)]);
        assert!(report.is_ok(), "{report:#?}");
        assert!(report.notes.is_empty(), "{report:#?}");
    }

    #[test]
    fn two_radiants_without_neighbour_in_a_larger_system_is_a_problem() {
        let mut configs = vec![radiant(0, None), radiant(1, None)];
        configs.extend((2..6).map(|number| radiant(number, Some(0))));
        let report = check(&configs);
        let found = problems_mentioning(&report, "r0.toml, r1.toml have no neighbour");
        assert_eq!(found.len(), 1, "{report:#?}");
    }

    #[test]
    fn no_configs_is_a_problem_not_a_panic() {
        assert!(!check(&[]).is_ok());
    }
}
