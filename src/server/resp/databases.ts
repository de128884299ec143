/** SELECT databases: Redis' 16 numbered databases mapped onto ragkv namespaces. */

/** Databases SELECT accepts, as in Redis. */
export const databaseCount = 16;

/** The namespace of database `db`: 0 is `default`, n is `db<n>`. */
export function namespaceOfDb(db: number): string {
  return db === 0 ? 'default' : `db${db}`;
}

/** The Redis version ragkv reports (INFO, HELLO) so that clients enable Redis 7 features. */
export const redisVersion = '7.0.0';
