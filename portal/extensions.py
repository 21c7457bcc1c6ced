"""Flask extensions: created once here, bound to the app in create_app()."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

from portal.models.base import Base


class PortalLimiter(Limiter):
    """Flask-Limiter whose before_request pass runs only when there is something for it to check.

    That pass evaluates application-wide, default and blueprint limits; limits declared on a view with
    `limiter.limit(...)` (sign-in, the token endpoint) are checked by the decorator itself when the view runs.
    The portal declares only the latter, so on every other request the pass was pure cost. Should an app-wide,
    default or blueprint limit ever be configured, the pass runs again as before."""

    def _check_request_limit(self, callable_name=None, in_middleware=True):
        if in_middleware and not self._has_wide_limits():
            return None
        return super()._check_request_limit(callable_name, in_middleware)

    def _has_wide_limits(self) -> bool:
        manager = self.limit_manager
        # getattr with True: if a future Flask-Limiter renames the attribute, fall back to always checking.
        return bool(manager.application_limits or manager.default_limits
                    or getattr(manager, "_blueprint_limits", True))


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = PortalLimiter(key_func=get_remote_address)
