"""A pretix for tests/pretix.rs, set up through Django as its operator would
in pretix's back office: `setup` migrates the (SQLite) database and makes
an organizer `venue` with a team allowed everything and an API token
(printed); `sig1 EVENT` switches the event to pretix's signature scheme 1
for ticket secrets (a back-office setting the REST API does not expose).
Run with PRETIX_CONFIG_FILE set."""
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pretix.settings")
import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django_scopes import scopes_disabled  # noqa: E402
from pretix.base.models import Event, Organizer, Team  # noqa: E402


def setup():
    call_command("migrate", verbosity=0, interactive=False)
    with scopes_disabled():
        org, _ = Organizer.objects.get_or_create(slug="venue", defaults={"name": "The Venue"})
        team, _ = Team.objects.get_or_create(
            organizer=org,
            name="venuebox",
            defaults={"all_events": True, "all_event_permissions": True,
                      "all_organizer_permissions": True},
        )
        print(team.tokens.create(name="venuebox").token)


def sig1(slug):
    with scopes_disabled():
        event = Event.objects.get(organizer__slug="venue", slug=slug)
        event.settings.ticket_secret_generator = "pretix_sig1"


if __name__ == "__main__":
    {"setup": lambda: setup(), "sig1": lambda: sig1(sys.argv[2])}[sys.argv[1]]()
