// A Backstage backend that hosts only the auth plugin (0.31) with the guest provider, for
// tests/backstage_auth/test_switch.py: the server an operator switches away from.
// Config comes from the --config arguments (backend-defaults' root config service).
'use strict';

const { createBackend } = require('@backstage/backend-defaults');
const { createServiceFactory } = require('@backstage/backend-plugin-api');
const { catalogServiceRef } = require('@backstage/plugin-catalog-node');
const { InMemoryCatalogClient } = require('@backstage/catalog-client/testUtils');

const backend = createBackend();
backend.add(require('@backstage/plugin-auth-backend'));
backend.add(require('@backstage/plugin-auth-backend-module-guest-provider'));
// No catalog plugin here: sign-in resolvers and the refresh-token presence check see an
// empty catalog instead of calling one over HTTP.
backend.add(
  createServiceFactory({
    service: catalogServiceRef,
    deps: {},
    factory: () => new InMemoryCatalogClient({ entities: [] }),
  }),
);
backend.start().catch(error => {
  console.error(error);
  process.exit(1);
});
