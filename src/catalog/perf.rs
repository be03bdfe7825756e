//! Performance artifacts: Kubeflow's `targetRPS` sizing and `recommendations` selection.
//!
//! - `targetRPS = N` gives each artifact `replicas` = ceil(N ÷ its `rpsProperty`), clamped to 1…i32::MAX,
//!   and `total_requests_per_second` = replicas × rps (artifacts without a positive rps are left as is).
//! - Recommendations, per `hardwareTypeProperty` group: (1) by latency ascending, keep an artifact only if
//!   its cost (hardware count × replicas, each defaulting to 1) is strictly lower than every faster one
//!   kept; (2) from cheapest to most expensive, keep one only if it cuts latency by more than ε relative to
//!   the last kept (ε = 0.05, or 0.1 once that latency is ≤ 100). The result keeps the input order.

use std::collections::BTreeMap;

use modelcat_sources::MetadataValue;

/// The property names the computation reads.
#[derive(Debug, Clone)]
pub struct PerfProperties {
    pub latency: String,
    pub rps: String,
    pub hardware_count: String,
    pub hardware_type: String,
}

impl Default for PerfProperties {
    fn default() -> Self {
        PerfProperties {
            latency: "ttft_p90".into(),
            rps: "requests_per_second".into(),
            hardware_count: "hardware_count".into(),
            hardware_type: "hardware_type".into(),
        }
    }
}

fn number(properties: &BTreeMap<String, MetadataValue>, name: &str) -> Option<f64> {
    match properties.get(name)? {
        MetadataValue::Int(number) => Some(*number as f64),
        MetadataValue::Double(number) => Some(*number),
        MetadataValue::String(text) => text.trim().parse().ok(),
        MetadataValue::Bool(_) => None,
    }
}

/// Adds `replicas` and `total_requests_per_second` for a target load.
pub fn size_for(properties: &mut BTreeMap<String, MetadataValue>, names: &PerfProperties, target_rps: i32) {
    let Some(rps) = number(properties, &names.rps).filter(|rps| *rps > 0.0) else { return };
    let replicas = (f64::from(target_rps) / rps).ceil().clamp(1.0, f64::from(i32::MAX)) as i64;
    properties.insert("replicas".into(), MetadataValue::Int(replicas));
    properties.insert("total_requests_per_second".into(), MetadataValue::Double(replicas as f64 * rps));
}

/// The positions (in input order) of the recommended artifacts.
pub fn recommend(artifacts: &[&BTreeMap<String, MetadataValue>], names: &PerfProperties) -> Vec<usize> {
    let mut groups: BTreeMap<String, Vec<(usize, f64, f64)>> = BTreeMap::new();
    for (position, properties) in artifacts.iter().enumerate() {
        let Some(latency) = number(properties, &names.latency) else { continue };
        let count = number(properties, &names.hardware_count).unwrap_or(1.0);
        let replicas = number(properties, "replicas").unwrap_or(1.0);
        let group = match properties.get(&names.hardware_type) {
            Some(MetadataValue::String(kind)) => kind.clone(),
            _ => String::new(),
        };
        groups.entry(group).or_default().push((position, latency, count * replicas));
    }
    let mut kept = Vec::new();
    for (_, mut candidates) in groups {
        candidates.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let mut frontier: Vec<(usize, f64, f64)> = Vec::new();
        for candidate in candidates {
            if frontier.iter().all(|faster| candidate.2 < faster.2) {
                frontier.push(candidate);
            }
        }
        // Cheapest (slowest) first.
        frontier.reverse();
        let mut last: Option<f64> = None;
        for (position, latency, _) in frontier {
            let keep = match last {
                None => true,
                Some(previous) => {
                    let epsilon = if previous <= 100.0 { 0.1 } else { 0.05 };
                    (previous - latency) / previous > epsilon
                }
            };
            if keep {
                kept.push(position);
                last = Some(latency);
            }
        }
    }
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(hardware: &str, latency: f64, count: i64, rps: f64) -> BTreeMap<String, MetadataValue> {
        BTreeMap::from([
            ("hardware_type".into(), MetadataValue::String(hardware.into())),
            ("ttft_p90".into(), MetadataValue::Double(latency)),
            ("hardware_count".into(), MetadataValue::Int(count)),
            ("requests_per_second".into(), MetadataValue::Double(rps)),
        ])
    }

    #[test]
    fn sizing_rounds_replicas_up() {
        let mut properties = artifact("H100", 50.0, 1, 3.0);
        size_for(&mut properties, &PerfProperties::default(), 10);
        assert_eq!(properties["replicas"], MetadataValue::Int(4));
        assert_eq!(properties["total_requests_per_second"], MetadataValue::Double(12.0));
        let mut idle = artifact("H100", 50.0, 1, 0.0);
        size_for(&mut idle, &PerfProperties::default(), 10);
        assert!(!idle.contains_key("replicas"));
    }

    #[test]
    fn recommendations_keep_the_cost_latency_frontier() {
        let artifacts = [
            artifact("H100", 100.0, 1, 1.0), // cheapest: kept
            artifact("H100", 50.0, 2, 1.0),  // faster and dearer, cuts latency by half: kept
            artifact("H100", 49.0, 4, 1.0),  // dearer, cuts latency by 2%: dropped
            artifact("H100", 60.0, 4, 1.0),  // slower than a cheaper one: dropped
            artifact("A100", 300.0, 1, 1.0), // its own group: kept
        ];
        let refs: Vec<_> = artifacts.iter().collect();
        assert_eq!(recommend(&refs, &PerfProperties::default()), vec![0, 1, 4]);
    }
}
