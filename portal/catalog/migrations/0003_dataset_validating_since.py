from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("catalog", "0002_versions_formats_and_architectures"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="validating_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
