// The rest of a Backstage backend, WITHOUT the auth plugin (0.19 backend-defaults): the
// catalog (file locations) and the MCP actions backend, for tests/backstage_backend. The auth
// plugin is our server, found through discovery.endpoints; plugin tokens go both ways.
// Config comes from the --config arguments (backend-defaults' root config service).
'use strict';

const { createBackend } = require('@backstage/backend-defaults');

const backend = createBackend();
backend.add(require('@backstage/plugin-catalog-backend'));
backend.add(require('@backstage/plugin-mcp-actions-backend'));
backend.start().catch(error => {
  console.error(error);
  process.exit(1);
});
