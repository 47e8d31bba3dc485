"""A pretix for tests/pretix.rs, set up through Django as its operator would
in pretix's back office: `migrate` migrates the (SQLite) database only
(the tests keep a migrated copy per pretix version); `setup` migrates what
is left to migrate and makes
an organizer `venue` with a team allowed everything and an API token
(printed); `sig1 EVENT` switches the event to pretix's signature scheme 1
for ticket secrets (a back-office setting the REST API does not expose); `orders EVENT ITEM N`
places N paid one-ticket orders at once (the REST API takes minutes for
thousands), as a busy on-sale the day before would have.
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


def orders(slug, item_id, n):
    from decimal import Decimal

    from django.db import transaction
    from pretix.base.models import Order, OrderPosition

    with scopes_disabled(), transaction.atomic():
        event = Event.objects.get(organizer__slug="venue", slug=slug)
        item = event.items.get(pk=int(item_id))
        for i in range(int(n)):
            order = Order.objects.create(
                event=event, status=Order.STATUS_PAID, email=f"guest{i}@example.org",
                locale="en", total=Decimal("25.00"), sales_channel=event.organizer.sales_channels.get(identifier="web"),
            )
            OrderPosition.objects.create(
                order=order, item=item, price=Decimal("25.00"), positionid=1,
                attendee_name_parts={"_scheme": "full", "full_name": f"Guest {i:04d}"},
            )
        # Sold the day before: older than any import's overlap window.
        from datetime import timedelta

        from django.utils.timezone import now
        Order.objects.filter(event=event).update(last_modified=now() - timedelta(days=1))


if __name__ == "__main__":
    {"migrate": lambda: call_command("migrate", verbosity=0, interactive=False),
     "setup": lambda: setup(), "sig1": lambda: sig1(sys.argv[2]),
     "orders": lambda: orders(*sys.argv[2:5])}[sys.argv[1]]()
