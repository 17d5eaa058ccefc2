"""The development identity provider's pages: the login form and the error page."""

from __future__ import annotations

# Response headers of every page: never cached, never framed, no script at all.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    # Not no-referrer: browsers then send "Origin: null" with the form, which the
    # same-origin check could not tell from a sandboxed page elsewhere.
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

_STYLE = """
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1b1d21; }
  main { max-width: 26rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem;
         border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }
  h1 { font-size: 1.2rem; margin-top: 0; }
  .badge { display: inline-block; background: #ffe8a3; color: #5c4400; font-size: .75rem;
           padding: .1rem .5rem; border-radius: 4px; margin-bottom: .75rem; }
  .users button { display: block; width: 100%; margin: .4rem 0; padding: .6rem; text-align: left;
                  background: #eef3fb; border: 1px solid #c5d3ea; border-radius: 6px;
                  cursor: pointer; font-size: 1rem; }
  .users button small { color: #556; }
  label { display: block; margin-top: 1rem; font-size: .9rem; }
  input[type=text] { width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }
  .actions { display: flex; gap: .5rem; margin-top: .75rem; }
  .actions button { padding: .5rem 1rem; font-size: 1rem; }
  .muted { color: #667; font-size: .8rem; }
  .error { color: #b00020; }
"""

LOGIN_PAGE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in: development identity provider</title>
<style>"""
    + _STYLE
    + """</style>
</head>
<body>
<main>
  <span class="badge">development only</span>
  <h1>Sign in to <code>{{ client_id }}</code></h1>
  <p class="muted">Requested scope: <code>{{ scope or "(none)" }}</code>.
    No password: pick a user or type any name.</p>
  {% if error %}<p class="error" id="login-error">{{ error }}</p>{% endif %}
  <form method="post" class="users">
    {% for user in users %}
    <button type="submit" name="user" value="{{ user.username }}" id="user-{{ user.username }}">
      {{ user.name }} <small>{{ user.email }}</small>
    </button>
    {% endfor %}
  </form>
  <form method="post">
    <label for="name">Or sign in as</label>
    <input type="text" id="name" name="name" autocomplete="off" placeholder="any name, e.g. dana">
    <div class="actions">
      <button type="submit" id="sign-in">Sign in</button>
      <button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
    </div>
  </form>
  <p class="muted">Issuer {{ issuer }}</p>
</main>
</body>
</html>
"""
)

ERROR_PAGE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Development identity provider: error</title>
<style>"""
    + _STYLE
    + """</style>
</head>
<body>
<main>
  <span class="badge">development only</span>
  <h1>This sign-in request cannot be served</h1>
  <p class="error" id="error">{{ error }}{% if description %}: {{ description }}{% endif %}</p>
  <p class="muted">Clients are the <code>auth.providers.*</code> environments whose
    <code>metadataUrl</code> is {{ issuer }}/.well-known/openid-configuration.</p>
</main>
</body>
</html>
"""
)
