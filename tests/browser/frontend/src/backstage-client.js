// The test page's client: the real OAuth2 API of @backstage/core-app-api, set up the way
// Backstage's app-defaults set up an OIDC provider, driven like its SignInPage and
// OAuthRequestDialog drive it. Bundled by tests/browser with esbuild.
import {
  ConfigReader,
  OAuth2,
  OAuthRequestManager,
  UrlPatternDiscovery,
} from '@backstage/core-app-api';

const config = window.TEST_CONFIG;
const $ = (id) => document.getElementById(id);

const oauthRequestApi = new OAuthRequestManager();
const oidcAuthApi = OAuth2.create({
  configApi: new ConfigReader({ app: { baseUrl: window.location.origin } }),
  discoveryApi: UrlPatternDiscovery.compile(`${config.backendBaseUrl}/api/{{pluginId}}`),
  oauthRequestApi,
  environment: 'development',
  provider: { id: 'oidc', title: 'OIDC', icon: () => null },
  defaultScopes: ['openid', 'email', 'profile', 'offline_access'],
});

window.testEvents = [];
window.oidcAuthApi = oidcAuthApi;

oidcAuthApi.sessionState$().subscribe((state) => {
  window.testEvents.push({ type: 'session_state', state });
});

async function show(source, options) {
  const identity = await oidcAuthApi.getBackstageIdentity(options);
  if (!identity) {
    $('state').textContent = 'signed-out';
    for (const id of ['email', 'user', 'ownership', 'token', 'id-token']) $(id).textContent = '';
    $('source').textContent = source;
    return;
  }
  // Both served from the session the call above established: no further request.
  const profile = await oidcAuthApi.getProfile({ optional: true });
  const idToken = await oidcAuthApi.getIdToken({ optional: true });
  $('email').textContent = profile?.email ?? '';
  $('user').textContent = identity.identity.userEntityRef;
  $('ownership').textContent = identity.identity.ownershipEntityRefs.join(', ');
  $('token').textContent = identity.token.split('.').length === 3 ? 'JWT' : 'missing';
  $('id-token').textContent = idToken.split('.').length === 3 ? 'JWT' : 'missing';
  $('source').textContent = source;
  $('state').textContent = 'signed-in';
}

function run(source, options) {
  $('error').textContent = '';
  return show(source, options).catch((error) => {
    window.testEvents.push({ type: 'error', name: error.name, message: error.message });
    $('state').textContent = 'error';
    $('error').textContent = `${error.name}: ${error.message}`;
  });
}

// OAuthRequestDialog: list pending login requests, each with a button that opens the popup.
oauthRequestApi.authRequest$().subscribe((requests) => {
  const container = $('auth-requests');
  container.textContent = '';
  for (const request of requests) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'auth-request';
    button.textContent = `Log in to ${request.provider.title}`;
    button.addEventListener('click', () => request.trigger());
    container.appendChild(button);
  }
});

// SignInPage: a button that asks for the identity with an instant popup.
$('sign-in').addEventListener('click', () => run('sign-in', { instantPopup: true }));
// A plain (non-optional) call: the login request goes through oauthRequestApi.
$('sign-in-request').addEventListener('click', () => run('sign-in-request', {}));
$('sign-out').addEventListener('click', () => {
  oidcAuthApi.signOut().then(
    () => run('sign-out', { optional: true }),
    (error) => {
      $('error').textContent = `${error.name}: ${error.message}`;
    },
  );
});
// SignInPage on load: an optional check for an existing session (a /refresh, no popup).
run('load', { optional: true });
