export { TrustAuthority, type TrustAuthorityOptions } from './authority.ts';
export { JoinRefusedError, connectNode, connectPatiently, joinForCredential, rejoinOnRefusal, type JoinOptions, type NodeConnectOptions } from './join.ts';
export { GATEWAY_USER, JOIN_USER, joinPermissions, nodePermissions, serverUsers, type SubjectPermissions, type TrustedNode } from './permissions.ts';
export { SpotChecker, DEFAULT_SPOT_CHECK_RATE, type SpotCheckEvent, type SpotCheckerOptions } from './spot-check.ts';
export { DEFAULT_TOLERANCE, INT4_TOLERANCE, relativeError, toleranceFor } from './compare.ts';
export { ensureClusterTls, fetchPinnedCa, fingerprintOf, type ClusterTls } from './tls.ts';
