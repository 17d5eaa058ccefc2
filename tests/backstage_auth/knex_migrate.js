// Runs @backstage/plugin-auth-backend's own knex migrations (its migrations/ folder, as
// the plugin does when it starts) on one PostgreSQL database.
//   node knex_migrate.js <socket dir> <database> [latest|rollback-all]
'use strict';

const path = require('node:path');
const knex = require('knex');

const [socketDir, database, action = 'latest'] = process.argv.slice(2);
const directory = path.join(
  __dirname,
  'node_modules/@backstage/plugin-auth-backend/migrations',
);

async function main() {
  const db = knex({
    client: 'pg',
    connection: { host: socketDir, user: 'postgres', database },
  });
  try {
    if (action === 'latest') {
      const [batch, names] = await db.migrate.latest({ directory });
      console.log(JSON.stringify({ batch, ran: names.map(n => path.basename(n)) }));
    } else if (action === 'rollback-all') {
      await db.migrate.rollback({ directory }, true);
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
