/**
 * The ordered list of features the risk model reads. A model file carries the same list in
 * its ONNX metadata (`wardgate.feature_names`), and the scorer rejects a model whose list
 * differs. Change the list only together with a new `version` and a retrained model.
 * docs/features.md describes each feature, what it measures and why it is there.
 *
 * "Blended baseline" means `w * user + (1 - w) * peer`, where `w` is `warm_up` and the peer
 * baseline is the one of the user's peer group (the sorted set of their groups). A new user
 * is therefore scored against their peers, and against their own history once they have
 * {@link WARM_UP_DAYS} active days.
 */
export const FEATURE_SCHEMA = Object.freeze({
  version: 'wardgate-features-v4',
  names: Object.freeze([
    'request_rate_ratio',
    'requests_this_minute',
    'hour_of_week_rarity',
    'peer_hour_rarity',
    'network_new_for_user',
    'network_new_for_peers',
    'device_new_for_user',
    'patients_hour',
    'patients_hour_ratio',
    'patients_day',
    'patients_day_ratio',
    'outside_care_share',
    'outside_care_hour',
    'care_unknown',
    'patient_flagged',
    'flagged_patients_hour',
    'bulk_export',
    'exports_day',
    'bulk_export_outside_care',
    'bytes_hour_ratio',
    'denied_hour',
    'denied_share_hour',
    'route_sensitivity',
    'night_time',
    'session_age',
    'warm_up',
    'patient_access',
    'write_method',
    'flagged_without_care',
    'anomaly_score',
    'route_patient_rarity',
    'patient_new_for_user',
    'new_patients_hour_ratio',
    'patient_not_admitted',
    'not_admitted_unusual',
    'census_unknown',
    'unexplained_access',
    'unexplained_hour_ratio',
    'unexplained_usual',
  ] as const),
});

export type FeatureName = (typeof FEATURE_SCHEMA.names)[number];

/** Number of active days after which a user's own baseline fully replaces the peer baseline. */
export const WARM_UP_DAYS = 7;
