export { TrustAuthority, type TrustAuthorityOptions } from './authority.ts';
export { joinForCredential, type JoinOptions } from './join.ts';
export { GATEWAY_USER, JOIN_USER, joinPermissions, nodePermissions, serverUsers, type SubjectPermissions, type TrustedNode } from './permissions.ts';
