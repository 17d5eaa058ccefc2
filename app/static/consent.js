// The demo's consent page for the authorization server: shows the request of a consent
// session, signs the user in as the demo page does, and approves or denies through the
// routes a Backstage app's own consent page uses (/v1/sessions/{id}/approve|reject).
'use strict';

(function () {
  var config = JSON.parse(document.getElementById('consent-config').textContent);
  var protocol = window.BackstageSignIn;
  // The demo page's key: a sign-in there carries over here, and back.
  var STORAGE_KEY = 'backstage-auth-backend-demo:session';
  var SESSION_URL = config.authBaseUrl + '/v1/sessions/' + encodeURIComponent(config.sessionId);
  var token = null;
  var request = null;

  function $(id) {
    return document.getElementById(id);
  }

  function showError(error) {
    $('error').textContent = (error.name || 'Error') + ': ' + error.message;
  }

  // The authorization routes answer {error, error_description}; the others Backstage's body.
  function errorOf(body, status) {
    if (body && typeof body.error === 'string') {
      return { name: body.error, message: body.error_description || '' };
    }
    if (body && body.error && body.error.message) return body.error;
    return { name: 'Error', message: 'Request failed, ' + status };
  }

  function json(response) {
    return response.json().then(
      function (body) {
        if (!response.ok) throw errorOf(body, response.status);
        return body;
      },
      function () {
        throw errorOf(null, response.status);
      },
    );
  }

  function updateButtons() {
    var ready = !!(token && request);
    $('approve').disabled = !ready;
    $('deny').disabled = !ready;
  }

  function signedIn(session, response) {
    var backstage = response.backstageIdentity || {};
    token = backstage.token || null;
    if (!token) return signedOut();
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(session));
    $('user').textContent = (backstage.identity || {}).userEntityRef || '';
    $('signed-in-as').hidden = false;
    $('providers').hidden = true;
    $('state').textContent = 'signed-in';
    updateButtons();
  }

  function signedOut() {
    token = null;
    sessionStorage.removeItem(STORAGE_KEY);
    $('signed-in-as').hidden = true;
    $('providers').hidden = false;
    $('state').textContent = 'signed-out';
    updateButtons();
  }

  // DefaultAuthConnector.refreshSession (OAuth), and the proxied sign-in (GET /refresh).
  function refresh(session, optional) {
    var query = session.kind === 'oauth' ? { optional: !!optional, scope: session.scope } : {};
    var url = protocol.buildUrl(config.authBaseUrl, session.provider, session.env, '/refresh', query);
    return fetch(url, { headers: { 'x-requested-with': 'XMLHttpRequest' }, credentials: 'include' })
      .then(json)
      .then(
        function (body) {
          signedIn(session, body);
        },
        function (error) {
          signedOut();
          if (!optional) showError(error);
        },
      );
  }

  function signIn(provider, env) {
    $('error').textContent = '';
    if (provider.kind === 'proxy') {
      return refresh({ provider: provider.id, kind: 'proxy', env: config.environment }, false);
    }
    var session = { provider: provider.id, kind: 'oauth', env: env, scope: provider.scope };
    var url = protocol.buildUrl(config.authBaseUrl, provider.id, env, '/start', {
      scope: provider.scope,
      origin: window.location.origin,
      flow: 'popup',
    });
    $('state').textContent = 'signing-in';
    return protocol.openLoginPopup(url, provider.id + ' Login').then(
      function (response) {
        signedIn(session, response);
      },
      function (error) {
        signedOut();
        showError(error);
      },
    );
  }

  function renderProviders() {
    config.providers.forEach(function (provider) {
      var environments = provider.kind === 'oauth' ? provider.environments.slice() : [null];
      environments.sort(function (a, b) {
        return (b === config.environment) - (a === config.environment);
      });
      environments.forEach(function (env) {
        var button = document.createElement('button');
        button.type = 'button';
        button.className = 'provider';
        button.id = 'sign-in-' + provider.id + (env ? '-' + env : '');
        button.textContent = 'Sign in with ' + provider.id + (env ? ' (' + env + ')' : '');
        button.addEventListener('click', function () {
          signIn(provider, env);
        });
        $('providers').appendChild(button);
      });
    });
  }

  function showRequest(body) {
    request = body;
    $('client-name').textContent = body.clientName;
    $('client-id').textContent = body.clientId;
    // A client that describes itself (a Client ID Metadata Document): who publishes it.
    if (body.clientHost) {
      $('metadata-host').textContent = body.clientHost;
      $('metadata-host').hidden = false;
      $('metadata-label').hidden = false;
    }
    var host;
    try {
      host = new URL(body.redirectUri).host;
    } catch (e) {
      host = body.redirectUri;
    }
    $('redirect-host').textContent = host;
    var scopes = (body.scope || '').split(' ').filter(Boolean);
    (scopes.length ? scopes : ['(none)']).forEach(function (scope) {
      var item = document.createElement('li');
      item.textContent = scope;
      $('scopes').appendChild(item);
    });
    $('request').hidden = false;
    updateButtons();
  }

  function decide(action) {
    $('approve').disabled = true;
    $('deny').disabled = true;
    $('error').textContent = '';
    return fetch(SESSION_URL + '/' + action, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + token },
    })
      .then(json)
      .then(
        function (body) {
          $('decision').textContent = (action === 'approve' ? 'Approved' : 'Denied') +
            ': returning to the application';
          window.location.href = body.redirectUrl;
        },
        function (error) {
          showError(error);
          updateButtons();
        },
      );
  }

  function init() {
    renderProviders();
    $('approve').addEventListener('click', function () {
      decide('approve');
    });
    $('deny').addEventListener('click', function () {
      decide('reject');
    });
    fetch(SESSION_URL).then(json).then(showRequest, showError);
    var stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) {
      refresh(JSON.parse(stored), true);
    } else {
      signedOut();
    }
  }

  init();
})();
