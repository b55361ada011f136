from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("fleetapp", "0001_initial")]

    operations = [
        migrations.AddField(model_name="note", name="tag", field=models.CharField(db_index=True, max_length=40, null=True)),
    ]
