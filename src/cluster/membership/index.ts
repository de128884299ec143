/** SWIM membership: who is in the cluster, and how to reach them. */
export { Swim, type SwimOptions, type SwimStats, type MembershipEvent, type MembershipEventType } from './swim.js';
export { defaultSwimConfig, makeSwimConfig, membershipLimits, type SwimConfig } from './config.js';
export type { MemberIdentity, MemberStatus, MemberView } from './state.js';
