/**
 * Maximum number of names in `request.query_params`. The names after the first 32 distinct
 * ones are dropped.
 * NOTE: a client can hide a name from the policy by sending 32 other names before it, so a
 * rule that must see every name should also match a full list.
 */
export const MAX_QUERY_PARAMS = 32;

/**
 * Returns the names of the parameters in a query string (without the leading `?`), as
 * `request.query_params` gives them to the policy: decoded as `URLSearchParams` decodes
 * them (`%XX` escapes, `+` as a space), with FHIR modifiers removed from each link of a
 * chain (`name:contains` gives `name`, `subject:Patient.name` gives `subject.name`),
 * without duplicates, in order of first appearance, and at most {@link MAX_QUERY_PARAMS}.
 * Empty names are skipped. Values are never returned, because they can name patients.
 */
export function queryParameterNames(query: string): string[] {
  const names = new Set<string>();

  for (const [rawName] of new URLSearchParams(query)) {
    const name = stripModifiers(rawName);
    if (name === '') continue;

    names.add(name);
    if (names.size === MAX_QUERY_PARAMS) break;
  }

  return [...names];
}

/** Removes the `:modifier` from every dot-separated link of a FHIR search parameter name. */
export function stripModifiers(name: string): string {
  if (!name.includes(':')) return name;

  return name
    .split('.')
    .map((link) => {
      const colon = link.indexOf(':');
      return colon === -1 ? link : link.slice(0, colon);
    })
    .join('.');
}
