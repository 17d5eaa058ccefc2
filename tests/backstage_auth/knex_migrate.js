// Runs @backstage/plugin-auth-backend's own knex migrations (its migrations/ folder, as
// the plugin does when it starts) on one PostgreSQL database.
// With `plugin-keys`, backend-defaults' plugin key store migrations instead, in the knex
// table its DatabaseKeyStore uses.
//   node knex_migrate.js <socket dir> <database> [latest|rollback-all] [auth|plugin-keys]
'use strict';

const path = require('node:path');
const knex = require('knex');

const [socketDir, database, action = 'latest', set = 'auth'] = process.argv.slice(2);
const SETS = {
  auth: {
    directory: path.join(__dirname, 'node_modules/@backstage/plugin-auth-backend/migrations'),
  },
  'plugin-keys': {
    directory: path.join(__dirname, 'node_modules/@backstage/backend-defaults/migrations/auth'),
    tableName: 'backstage_backend_public_keys__knex_migrations',
  },
};
const options = SETS[set];
if (!options) throw new Error(`unknown migration set ${set}`);

async function main() {
  const db = knex({
    client: 'pg',
    connection: { host: socketDir, user: 'postgres', database },
  });
  try {
    if (action === 'latest') {
      const [batch, names] = await db.migrate.latest(options);
      console.log(JSON.stringify({ batch, ran: names.map(n => path.basename(n)) }));
    } else if (action === 'rollback-all') {
      await db.migrate.rollback(options, true);
    } else {
      throw new Error(`unknown action ${action}`);
    }
  } finally {
    await db.destroy();
  }
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
