export { HttpError, type HttpErrorCode } from './errors.ts';
export { normalizePath, MAX_TARGET_LENGTH, type NormalizedTarget } from './normalize-path.ts';
export { checkFraming, checkMethod, checkMethodOverride } from './check-framing.ts';
export { stripHopByHopHeaders, stripIdentityHeaders, setForwardedHeaders, type ForwardedFacts } from './identity-headers.ts';
export { createTrustedProxies, parseCidr, resolveForwardedOrigin, type Cidr, type ForwardedOrigin, type TrustedProxies } from './trusted-proxies.ts';
