// The stock Backstage frontend's sign-in protocol in plain JS (@backstage/core-app-api:
// DefaultAuthConnector, loginPopup), shared by the demo page and the consent page.
'use strict';

window.BackstageSignIn = (function () {
  // DefaultAuthConnector.buildQueryString: strings encoded, `true` as a bare key,
  // anything else skipped; env always last.
  function buildUrl(authBaseUrl, provider, env, path, query) {
    var all = Object.assign({}, query || {}, { env: env });
    var parts = Object.keys(all)
      .map(function (key) {
        var value = all[key];
        if (typeof value === 'string') {
          return encodeURIComponent(key) + '=' + encodeURIComponent(value);
        }
        return value ? encodeURIComponent(key) : undefined;
      })
      .filter(Boolean);
    return authBaseUrl + '/' + provider + path + (parts.length ? '?' + parts.join('&') : '');
  }

  // loginPopup.ts: the popup posts config_info, then authorization_response.
  function openLoginPopup(url, name) {
    return new Promise(function (resolve, reject) {
      var width = 450;
      var height = 730;
      var left = window.screen.width / 2 - width / 2;
      var top = window.screen.height / 2 - height / 2;
      var origin = new URL(url).origin;
      var popup = window.open(
        url,
        name,
        'menubar=no,location=no,resizable=no,scrollbars=no,status=no,width=' +
          width + ',height=' + height + ',top=' + top + ',left=' + left,
      );
      var targetOrigin = '';
      if (!popup || typeof popup.closed === 'undefined' || popup.closed) {
        var rejected = new Error('Failed to open auth popup.');
        rejected.name = 'PopupRejectedError';
        reject(rejected);
        return;
      }
      function listener(event) {
        // Only our popup, and only from the backend's origin.
        if (event.source !== popup) return;
        if (event.origin !== origin) return;
        var data = event.data;
        if (!data || typeof data !== 'object') return;
        if (data.type === 'config_info') {
          targetOrigin = data.targetOrigin;
          return;
        }
        if (data.type !== 'authorization_response') return;
        if ('error' in data) {
          var error = new Error(data.error.message);
          error.name = data.error.name;
          reject(error);
        } else {
          resolve(data.response);
        }
        done();
      }
      var intervalId = setInterval(function () {
        if (popup.closed) {
          var message =
            'Login failed, ' +
            (targetOrigin && targetOrigin !== window.location.origin
              ? 'Incorrect app origin, expected ' + targetOrigin
              : 'popup was closed');
          var error = new Error(message);
          error.name = 'PopupClosedError';
          reject(error);
          done();
        }
      }, 100);
      function done() {
        window.removeEventListener('message', listener);
        clearInterval(intervalId);
      }
      window.addEventListener('message', listener);
    });
  }

  return { buildUrl: buildUrl, openLoginPopup: openLoginPopup };
})();
