"""Create the three roles the pages and actions check: viewer, operator and admin."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from fleet.roles import ROLES, ensure_roles


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist before we use them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    ensure_roles(apps)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "__latest__"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
