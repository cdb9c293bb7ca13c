/**
 * The ordered list of features the risk model reads. A model file carries the same list in
 * its ONNX metadata (`wardgate.feature_names`), and the scorer rejects a model whose list
 * differs. Change the list only together with a new `version` and a retrained model.
 *
 * "Blended baseline" below means `w * user + (1 - w) * peer`, where `w` is `warm_up` and the
 * peer baseline is the one of the user's peer group (the sorted set of their groups). A new
 * user is therefore scored against their peers, and against their own history once they have
 * {@link WARM_UP_DAYS} active days.
 *
 * | # | name | what it measures | why |
 * | --- | --- | --- | --- |
 * | 0 | `request_rate_ratio` | log2((requests this minute + 1) / (blended mean requests per active minute + 1)) | scripted scraping runs far above a person's usual pace |
 * | 1 | `requests_this_minute` | log2(1 + requests by this user this minute) | absolute pace, independent of a thin baseline |
 * | 2 | `hour_of_week_rarity` | -log2(168 * blended share of active minutes in this hour of the week), Laplace-smoothed | activity outside the user's usual shifts |
 * | 3 | `network_new_for_user` | novelty of the client network (/24 IPv4, /48 IPv6) for this user: 1 when never seen, falling linearly to 0 after 50 earlier requests from it | stolen credentials are used from elsewhere, for a whole session |
 * | 4 | `network_new_for_peers` | the same novelty for the peer group as a whole | separates a new ward PC from a network outside the hospital |
 * | 5 | `device_new_for_user` | the same novelty for the user agent hash and this user | a new browser or tool, such as a script |
 * | 6 | `patients_hour` | log2(1 + distinct patients this user opened in the current hour) | snooping touches many records |
 * | 7 | `patients_hour_ratio` | log2((patients this hour + 1) / (blended mean distinct patients per active hour + 1)) | the same, relative to the user's workload |
 * | 8 | `patients_day` | log2(1 + distinct patients this user opened today, UTC day) | slow snooping spread over a day |
 * | 9 | `patients_day_ratio` | log2((patients today + 1) / (blended mean distinct patients per active day + 1)) | the same, relative to the user's workload |
 * | 10 | `bulk_export` | 1 for a FHIR `$everything` or `$export` operation | bulk export is the fastest way to exfiltrate records |
 * | 11 | `route_sensitivity` | 0 for `low`, 0.5 for `normal`, 1 for `high` routes | misuse matters more where the data is sensitive |
 * | 12 | `night_time` | 1 between 22:00 and 06:00 local time | fewer colleagues see what happens at night |
 * | 13 | `warm_up` | active days of history / WARM_UP_DAYS, capped at 1 | lets the model trust a thin baseline less |
 * | 14 | `patient_access` | log2(1 + patient ids named by this request) | record access as opposed to static assets or worklists |
 * | 15 | `write_method` | 1 for POST, PUT, PATCH and DELETE | changes to records carry more risk than reads |
 */
export const FEATURE_SCHEMA = Object.freeze({
  version: 'wardgate-features-v1',
  names: Object.freeze([
    'request_rate_ratio',
    'requests_this_minute',
    'hour_of_week_rarity',
    'network_new_for_user',
    'network_new_for_peers',
    'device_new_for_user',
    'patients_hour',
    'patients_hour_ratio',
    'patients_day',
    'patients_day_ratio',
    'bulk_export',
    'route_sensitivity',
    'night_time',
    'warm_up',
    'patient_access',
    'write_method',
  ] as const),
});

export type FeatureName = (typeof FEATURE_SCHEMA.names)[number];

/** Number of active days after which a user's own baseline fully replaces the peer baseline. */
export const WARM_UP_DAYS = 7;
