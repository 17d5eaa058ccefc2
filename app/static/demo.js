// The demo app: the stock Backstage frontend's auth protocol in plain JS
// (@backstage/core-app-api; the popup sign-in is signin.js's, the proxied sign-in here).
'use strict';

(function () {
  var config = JSON.parse(document.getElementById('demo-config').textContent);
  var STORAGE_KEY = 'backstage-auth-backend-demo:session';
  // {provider, kind, env, scope} of the session shown, or null.
  var current = null;

  function $(id) {
    return document.getElementById(id);
  }

  var protocol = window.BackstageSignIn;

  function buildUrl(provider, env, path, query) {
    return protocol.buildUrl(config.authBaseUrl, provider, env, path, query);
  }

  // JWT segments are base64url without padding; the JSON inside is UTF-8.
  function decodeSegment(segment) {
    var base64 = segment.replace(/-/g, '+').replace(/_/g, '/');
    base64 += '='.repeat((4 - (base64.length % 4)) % 4);
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  // Tokens in providerInfo are long and secret-ish: show their start and length only.
  function shortenTokens(info) {
    var out = {};
    Object.keys(info || {}).forEach(function (key) {
      var value = info[key];
      out[key] =
        typeof value === 'string' && /token/i.test(key) && value.length > 24
          ? value.slice(0, 16) + '… (' + value.length + ' characters)'
          : value;
    });
    return out;
  }

  function setState(state, action) {
    $('state').textContent = state;
    $('last-action').textContent = action ? '(' + action + ')' : '';
  }

  function clearError() {
    $('error').textContent = '';
  }

  function showError(error) {
    $('error').textContent = (error.name || 'Error') + ': ' + error.message;
  }

  function showSignedOut(action) {
    current = null;
    sessionStorage.removeItem(STORAGE_KEY);
    $('session').hidden = true;
    setState('signed-out', action);
  }

  function show(session, response, action) {
    current = session;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
    var backstage = response.backstageIdentity || {};
    var identity = backstage.identity || {};
    var profile = response.profile || {};
    $('provider').textContent = session.provider + (session.kind === 'oauth' ? ' (' + session.env + ')' : '');
    $('user').textContent = identity.userEntityRef || '';
    $('ownership').textContent = (identity.ownershipEntityRefs || []).join(', ');
    $('display-name').textContent = profile.displayName || '';
    $('email').textContent = profile.email || '';
    $('profile').textContent = pretty(profile);
    $('provider-info').textContent = response.providerInfo
      ? pretty(shortenTokens(response.providerInfo))
      : '(none: proxy providers have no provider session)';
    var token = backstage.token || '';
    var parts = token.split('.');
    try {
      var header = decodeSegment(parts[0]);
      var payload = decodeSegment(parts[1]);
      $('token-header').textContent = pretty(header);
      $('token-payload').textContent = pretty(payload);
      $('expires').textContent = payload.exp ? new Date(payload.exp * 1000).toLocaleString() : '';
    } catch (e) {
      $('token-header').textContent = '';
      $('token-payload').textContent = 'not a JWT: ' + e;
    }
    $('session').hidden = false;
    setState('signed-in', action);
  }

  function signIn(provider) {
    clearError();
    if (provider.kind === 'proxy') {
      var proxied = { provider: provider.id, kind: 'proxy', env: config.environment };
      return fetchSession(proxied, 'sign-in');
    }
    var env = provider.env;
    var session = { provider: provider.id, kind: 'oauth', env: env, scope: provider.scope };
    var url = buildUrl(provider.id, env, '/start', {
      scope: provider.scope,
      origin: window.location.origin,
      flow: 'popup',
    });
    setState('signing-in', provider.id);
    return protocol.openLoginPopup(url, provider.id + ' Login').then(
      function (response) {
        show(session, response, 'signed in through the popup');
      },
      function (error) {
        showSignedOut();
        showError(error);
      },
    );
  }

  // DefaultAuthConnector.refreshSession (OAuth), and the proxied sign-in (GET /refresh).
  function fetchSession(session, action, optional) {
    var query = session.kind === 'oauth' ? { optional: !!optional, scope: session.scope } : {};
    return fetch(buildUrl(session.provider, session.env, '/refresh', query), {
      headers: { 'x-requested-with': 'XMLHttpRequest' },
      credentials: 'include',
    }).then(
      function (res) {
        return res.json().then(
          function (body) {
            if (!res.ok || body.error) {
              showSignedOut(action + ': ' + res.status);
              if (!(optional && res.status === 401) && body.error) {
                showError(body.error);
              }
              return;
            }
            show(session, body, action);
          },
          function () {
            showSignedOut(action + ': ' + res.status);
          },
        );
      },
      function (error) {
        setState('connection-error', action);
        showError(error);
      },
    );
  }

  // DefaultAuthConnector.removeSession; proxy providers have no session to end.
  function logout() {
    clearError();
    if (!current) return Promise.resolve();
    if (current.kind === 'proxy') {
      showSignedOut('logged out');
      return Promise.resolve();
    }
    return fetch(buildUrl(current.provider, current.env, '/logout'), {
      method: 'POST',
      headers: { 'x-requested-with': 'XMLHttpRequest' },
      credentials: 'include',
    }).then(
      function (res) {
        if (!res.ok) {
          showError(new Error('Logout request failed, ' + res.status));
          return;
        }
        var contentType = res.headers.get('content-type') || '';
        if (contentType.indexOf('application/json') === -1) {
          showSignedOut('logged out');
          return;
        }
        return res.json().then(function (body) {
          showSignedOut('logged out');
          if (body.logoutUrl) {
            // RP-initiated logout: the identity provider ends its own session too.
            window.location.href = body.logoutUrl;
          }
        });
      },
      function (error) {
        showError(new Error('Logout request failed, ' + error));
      },
    );
  }

  function renderProviders() {
    var list = $('providers');
    if (!config.providers.length) {
      $('no-providers').hidden = false;
      return;
    }
    config.providers.forEach(function (provider) {
      var environments = provider.kind === 'oauth' ? provider.environments : [null];
      // The frontend's environment first.
      environments.sort(function (a, b) {
        return (b === config.environment) - (a === config.environment);
      });
      environments.forEach(function (env) {
        var button = document.createElement('button');
        button.type = 'button';
        button.className = 'provider';
        button.id = 'sign-in-' + provider.id + (env ? '-' + env : '');
        button.textContent = 'Sign in with ' + provider.id + ' ';
        var small = document.createElement('small');
        small.textContent = env ? '(' + env + ', popup)' : '(proxy, GET /refresh)';
        button.appendChild(small);
        button.addEventListener('click', function () {
          signIn(Object.assign({}, provider, { env: env }));
        });
        list.appendChild(button);
      });
    });
  }

  function init() {
    if (window.location.origin !== config.appOrigin) {
      var warning = $('origin-warning');
      warning.textContent =
        'This page is not at app.baseUrl (' + config.appOrigin + '): popup sign-ins will be ' +
        'refused. Open ' + config.appOrigin + '/ instead.';
      warning.hidden = false;
    }
    renderProviders();
    $('refresh').addEventListener('click', function () {
      clearError();
      if (current) fetchSession(current, 'refreshed');
    });
    $('logout').addEventListener('click', logout);
    // As Backstage's sign-in page: restore the session of the provider used last.
    var stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) {
      fetchSession(JSON.parse(stored), 'restored', true);
    } else {
      showSignedOut();
    }
  }

  init();
})();
